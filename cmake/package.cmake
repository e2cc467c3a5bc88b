# The installed CMake package: from an installed prefix,
#   find_package(faultline REQUIRED)
#   target_link_libraries(my_tests PRIVATE faultline::faultline)
# gives the C++ API (include/faultline/faultline.hpp) and the control library it runs on, and
# records where the prefix's libfaultline.so and `faultline` are (faultline_SHIM, faultline_CLI,
# the imported targets faultline::shim and faultline::cli). faultline::faultline passes the
# shim's path to its consumers as FAULTLINE_SHIM_PATH, the API's default library.
#
# Components: `runtime` is what a container image needs (bin/faultline and
# lib/faultline/libfaultline.so: `cmake --install build --component runtime`), `dev` the
# headers, static libraries and this package.
include(CMakePackageConfigHelpers)

set_target_properties(faultline_control PROPERTIES EXPORT_NAME control)
# In the build tree the API's default library is the one just built.
target_compile_definitions(faultline_api INTERFACE
  $<BUILD_INTERFACE:FAULTLINE_SHIM_PATH="$<TARGET_FILE:faultline_shim>">)

set(FL_PACKAGE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/faultline)
# The seccomp backend's server and the shim's engine it runs: the API serves a static or Go
# program's trapped calls with them (controller/seccomp/serve_detached.h).
set_target_properties(faultline_seccomp PROPERTIES EXPORT_NAME seccomp)
set_target_properties(faultline_engine PROPERTIES EXPORT_NAME engine)
install(TARGETS faultline_api faultline_control faultline_seccomp faultline_engine
        EXPORT faultline-targets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
install(EXPORT faultline-targets NAMESPACE faultline:: DESTINATION ${FL_PACKAGE_DIR}
        COMPONENT dev)

# Paths relative to the prefix, so the installed tree can be moved or copied elsewhere.
set(FL_SHIM_INSTALL_PATH lib/faultline/libfaultline.so)
set(FL_CLI_INSTALL_PATH ${CMAKE_INSTALL_BINDIR}/faultline)
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/faultline-config.cmake.in
  ${CMAKE_BINARY_DIR}/faultline-config.cmake
  INSTALL_DESTINATION ${FL_PACKAGE_DIR}
  PATH_VARS FL_SHIM_INSTALL_PATH FL_CLI_INSTALL_PATH)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/faultline-config-version.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/faultline-config.cmake
              ${CMAKE_BINARY_DIR}/faultline-config-version.cmake
        DESTINATION ${FL_PACKAGE_DIR} COMPONENT dev)
