# CPack pre-build script (cmake/cpack.cmake): strips the debug information from the static
# libraries staged for faultline-dev, as dh_strip does for a Debian -dev package. CPack's own
# CPACK_STRIP_FILES strips executables and shared objects only.
file(GLOB_RECURSE fl_static_libs "${CPACK_TEMPORARY_DIRECTORY}/*.a")
foreach(lib IN LISTS fl_static_libs)
  execute_process(COMMAND strip --strip-debug --enable-deterministic-archives "${lib}"
                  RESULT_VARIABLE result)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "strip --strip-debug ${lib} failed")
  endif()
endforeach()
