# Debian packages, built by one command (scripts/package.sh, or `cmake --build build --target
# package` in a configured tree):
#   faultline      the CLI, the shim, man pages, bash and zsh completion, example policies,
#                  copyright (install components `runtime` and `doc`)
#   faultline-dev  the public header, the API's static libraries, the CMake package and
#                  faultline.pc (component `dev`); it depends on the exact faultline it was
#                  built with, whose shim its users preload.
# Depends come from dpkg-shlibdeps (what the binaries really link: libc6, libstdc++6, libgcc-s1)
# plus libunwind8, which the shim dlopen()s for the `stack` selector and so no ELF header names.
# Binaries are stripped in the package (CPACK_STRIP_FILES; `cmake --install --strip` does the
# same for a plain install).

# ---- man pages, generated from docs/ at build time (no second copy to drift) ----------------
find_package(Python3 REQUIRED COMPONENTS Interpreter)
set(FL_MAN_DIR ${CMAKE_BINARY_DIR}/man)
set(FL_MAN_PAGES ${FL_MAN_DIR}/faultline.1 ${FL_MAN_DIR}/faultline-policy.5
                 ${FL_MAN_DIR}/faultline-experiment.5)
set(FL_MAN_GZ)
foreach(page ${FL_MAN_PAGES})
  list(APPEND FL_MAN_GZ ${page}.gz)
endforeach()
file(GLOB FL_MAN_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/docs/*.md)
add_custom_command(
  OUTPUT ${FL_MAN_PAGES} ${FL_MAN_GZ}
  COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/scripts/md2man.py
          --docs ${PROJECT_SOURCE_DIR}/docs --out ${FL_MAN_DIR} --version ${PROJECT_VERSION}
  DEPENDS ${PROJECT_SOURCE_DIR}/scripts/md2man.py ${FL_MAN_SOURCES}
  COMMENT "Generating faultline(1), faultline-policy(5), faultline-experiment(5) from docs/")
add_custom_target(faultline_man DEPENDS ${FL_MAN_PAGES} ${FL_MAN_GZ})
# Built with the CLI, so that any install of a tree with the CLI has its pages.
add_dependencies(faultline faultline_man)
install(FILES ${FL_MAN_DIR}/faultline.1.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1
        COMPONENT doc)
install(FILES ${FL_MAN_DIR}/faultline-policy.5.gz ${FL_MAN_DIR}/faultline-experiment.5.gz
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man5 COMPONENT doc)

# ---- completion --------------------------------------------------------------------------
install(FILES ${PROJECT_SOURCE_DIR}/completion/faultline.bash
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME faultline
        COMPONENT doc)
install(FILES ${PROJECT_SOURCE_DIR}/completion/_faultline
        DESTINATION ${CMAKE_INSTALL_DATADIR}/zsh/vendor-completions COMPONENT doc)

# ---- copyright and changelog, one of each per package (Debian policy 12.5, 12.7) ----------
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "faultline developers <faultline-devel@lists.example.org>")
set(FL_DEB_VERSION "${PROJECT_VERSION}-1")
foreach(FL_DEB_NAME faultline faultline-dev)
  set(dir ${CMAKE_BINARY_DIR}/debian/${FL_DEB_NAME})
  configure_file(${PROJECT_SOURCE_DIR}/cmake/debian/changelog.in ${dir}/changelog.Debian @ONLY)
  # gzip -9n: no name or timestamp in the header, so the package is reproducible.
  execute_process(COMMAND gzip -9nf ${dir}/changelog.Debian)
  if(FL_DEB_NAME STREQUAL "faultline")
    set(component doc)
  else()
    set(component dev)
  endif()
  install(FILES ${PROJECT_SOURCE_DIR}/cmake/debian/copyright ${dir}/changelog.Debian.gz
          DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/${FL_DEB_NAME} COMPONENT ${component})
endforeach()

# ---- pkg-config ---------------------------------------------------------------------------
# Paths relative to the .pc file (${pcfiledir}), so a prefix can be moved. The shim is a
# variable (`pkg-config --variable=shim faultline`), not a -D in Cflags: pkg-config's escaped
# quotes survive `$(pkg-config …)` in a shell literally and would break the define. The API's
# default without one is the install location it was built for (docs/api.md).
file(RELATIVE_PATH FL_PC_TO_PREFIX /${CMAKE_INSTALL_LIBDIR}/pkgconfig /)
string(REGEX REPLACE "/$" "" FL_PC_TO_PREFIX "${FL_PC_TO_PREFIX}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/faultline.pc.in ${CMAKE_BINARY_DIR}/faultline.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/faultline.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig
        COMPONENT dev)

# ---- CPack ----------------------------------------------------------------------------------
set(CPACK_GENERATOR DEB)
# cpack installs what is built and builds nothing: the `all` target holds the tests, which a
# package does not need (scripts/package.sh builds the packaged targets first).
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)
set(CPACK_PACKAGE_NAME faultline)
set(CPACK_PACKAGE_VENDOR "The faultline authors")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "${CPACK_DEBIAN_PACKAGE_MAINTAINER}")
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
set(CPACK_PACKAGE_DIRECTORY ${CMAKE_BINARY_DIR}/packages)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_GROUPING ONE_PER_GROUP)
set(CPACK_COMPONENT_RUNTIME_GROUP main)
set(CPACK_COMPONENT_DOC_GROUP main)
set(CPACK_COMPONENT_DEV_GROUP dev)
set(CPACK_COMPONENTS_ALL runtime doc dev)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_MAIN_PACKAGE_NAME faultline)
set(CPACK_DEBIAN_MAIN_PACKAGE_DEPENDS "libunwind8")
set(CPACK_DEBIAN_MAIN_PACKAGE_SECTION devel)
# The first line is the synopsis; the rest is reflowed by CPack (an empty line: a paragraph).
set(CPACK_DEBIAN_MAIN_DESCRIPTION "fault injector for unmodified Linux processes
faultline makes libc calls of an unmodified program fail (errors, delays,
short writes, corruption, quotas, network resets and latency, DNS failures,
crashes) as a TOML policy says, steered live through a shared-memory
session: faults are enabled, disabled and tuned while the program runs.

This package holds the faultline command, the preloaded library
/usr/lib/faultline/libfaultline.so, man pages, bash and zsh completion and
example policies.")
set(CPACK_DEBIAN_DEV_PACKAGE_NAME faultline-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "faultline (= ${FL_DEB_VERSION})")
set(CPACK_DEBIAN_DEV_PACKAGE_SHLIBDEPS OFF)
set(CPACK_DEBIAN_DEV_DESCRIPTION "fault injector for unmodified Linux processes - C++ API
faultline makes libc calls of an unmodified program fail as a TOML policy
says, steered live through a shared-memory session.

This package holds the C++ API for test suites (faultline/faultline.hpp,
C++17 or later), its static libraries, the CMake package
(find_package(faultline)) and the pkg-config file faultline.pc.")
# Static libraries keep their symbols but not their debug information (as dh_strip does).
set(CPACK_PRE_BUILD_SCRIPTS ${PROJECT_SOURCE_DIR}/cmake/strip_static.cmake)
include(CPack)
