# Platform probes, written into a generated config header instead of scattered #ifdefs.
include(CheckSymbolExists)
set(CMAKE_REQUIRED_DEFINITIONS -D_GNU_SOURCE)
check_symbol_exists(pwritev2 "sys/uio.h" FL_HAVE_PWRITEV2)
check_symbol_exists(close_range "unistd.h" FL_HAVE_CLOSE_RANGE)
unset(CMAKE_REQUIRED_DEFINITIONS)
# libunwind is loaded at run time by its SONAME (dlopen RTLD_LOCAL, see shim/engine/stack.cpp): read
# it from the library pkg-config found, so the shim asks for the version it was built against.
find_library(FL_LIBUNWIND_LIBRARY NAMES unwind HINTS ${LIBUNWIND_LIBRARY_DIRS})
set(FL_LIBUNWIND_SONAME "libunwind.so.8")
if(FL_LIBUNWIND_LIBRARY AND CMAKE_OBJDUMP)
  execute_process(COMMAND ${CMAKE_OBJDUMP} -p ${FL_LIBUNWIND_LIBRARY}
                  OUTPUT_VARIABLE fl_unwind_headers ERROR_QUIET)
  if(fl_unwind_headers MATCHES "SONAME +([^ \n]+)")
    set(FL_LIBUNWIND_SONAME "${CMAKE_MATCH_1}")
  endif()
endif()
configure_file(${CMAKE_CURRENT_LIST_DIR}/config.h.in ${CMAKE_BINARY_DIR}/generated/faultline_config.h)
