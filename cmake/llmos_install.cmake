# `cmake --install`: the public headers, libllmos.so (+ SONAME links) and libllmos.a, the `llmos`
# command, a CMake package (find_package(llmos) -> llmos::llmos, shared; llmos::llmos_static) and
# llmos.pc for pkg-config. Only the C API (llmos.h) and the header-only C++ API over it
# (llmos.hpp) are public; internal headers are not installed.
# Components: Runtime (libllmos.so.0, the `llmos` command) and Development (headers, the .so
# link, libllmos.a, CMake package, llmos.pc); a project embedding this build (e.g. a Python wheel)
# can install only what it needs, or turn LLMOS_INSTALL off.
option(LLMOS_INSTALL "Generate llmos's install rules (headers, libraries, CMake package, llmos.pc)" ON)
if(NOT LLMOS_INSTALL)
  return()
endif()
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(LLMOS_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/llmos)

install(FILES
  ${PROJECT_SOURCE_DIR}/include/llmos/llmos.h
  ${PROJECT_SOURCE_DIR}/include/llmos/llmos.hpp
  ${PROJECT_BINARY_DIR}/include/llmos/version.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/llmos COMPONENT Development)

install(TARGETS llmos llmos_static EXPORT llmosTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Runtime NAMELINK_COMPONENT Development
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Development
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT Runtime)
install(TARGETS llmos_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT Runtime)

install(EXPORT llmosTargets NAMESPACE llmos:: DESTINATION ${LLMOS_INSTALL_CMAKEDIR}
  COMPONENT Development)

# The static library carries the CUDA runtime in CUDA builds; the package finds it again.
if(LLMOS_HAVE_CUDA)
  set(LLMOS_CONFIG_DEPENDENCIES "find_dependency(CUDAToolkit)")
else()
  set(LLMOS_CONFIG_DEPENDENCIES "")
endif()
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/llmosConfig.cmake.in
  ${PROJECT_BINARY_DIR}/llmosConfig.cmake
  INSTALL_DESTINATION ${LLMOS_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/llmosConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/llmosConfig.cmake ${PROJECT_BINARY_DIR}/llmosConfigVersion.cmake
  DESTINATION ${LLMOS_INSTALL_CMAKEDIR} COMPONENT Development)

# llmos.pc is relocatable: its prefix is found from the file's own place (pkg-config's
# ${pcfiledir}), so `cmake --install --prefix DIR` needs no reconfiguration.
set(LLMOS_PKGCONFIG_DIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(LLMOS_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(LLMOS_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
else()
  string(REGEX REPLACE "[^/]+" ".." LLMOS_PC_UP "${LLMOS_PKGCONFIG_DIR}")
  set(LLMOS_PC_PREFIX "\${pcfiledir}/${LLMOS_PC_UP}")
  set(LLMOS_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(LLMOS_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(LLMOS_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(${CMAKE_CURRENT_LIST_DIR}/llmos.pc.in ${PROJECT_BINARY_DIR}/llmos.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/llmos.pc DESTINATION ${LLMOS_PKGCONFIG_DIR} COMPONENT Development)
