# Platform probes, written into a generated config header instead of scattered #ifdefs.
include(CheckSymbolExists)
set(CMAKE_REQUIRED_DEFINITIONS -D_GNU_SOURCE)
check_symbol_exists(pwritev2 "sys/uio.h" FL_HAVE_PWRITEV2)
check_symbol_exists(close_range "unistd.h" FL_HAVE_CLOSE_RANGE)
unset(CMAKE_REQUIRED_DEFINITIONS)
configure_file(${CMAKE_CURRENT_LIST_DIR}/config.h.in ${CMAKE_BINARY_DIR}/generated/faultline_config.h)
