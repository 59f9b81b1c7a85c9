# SPDX-License-Identifier: MIT
# Installation: public headers, the library, an exported CMake package (reactor::reactor)
# and a pkg-config file. Included last by the top-level CMakeLists.txt.
#
#   cmake --install build/release --prefix /opt/reactor
#   find_package(reactor REQUIRED)  +  target_link_libraries(app PRIVATE reactor::reactor)
#   pkg-config --cflags --libs reactor            (add --static for the default static library)

include(CMakePackageConfigHelpers)

set(REACTOR_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/reactor
    CACHE STRING "Where reactorConfig.cmake is installed, relative to the prefix")
mark_as_advanced(REACTOR_INSTALL_CMAKEDIR)

if(BUILD_SHARED_LIBS)
  # 0.x: no ABI promise between minor versions.
  set_target_properties(reactor PROPERTIES VERSION ${PROJECT_VERSION}
                                           SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})
endif()

# Every header under reactor/, keeping its path (reactor/core/detail/... included): the
# public headers include the detail ones.
file(GLOB_RECURSE reactor_public_headers CONFIGURE_DEPENDS
     RELATIVE ${PROJECT_SOURCE_DIR} ${PROJECT_SOURCE_DIR}/reactor/*.hpp)
foreach(header IN LISTS reactor_public_headers)
  cmake_path(GET header PARENT_PATH header_dir)
  install(FILES ${PROJECT_SOURCE_DIR}/${header}
          DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/${header_dir} COMPONENT reactor_development)
endforeach()

install(FILES ${PROJECT_BINARY_DIR}/include/reactor/version.hpp
              ${PROJECT_BINARY_DIR}/include/reactor/export.hpp
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/reactor COMPONENT reactor_development)

install(TARGETS reactor EXPORT reactorTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT reactor_development
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT reactor_runtime
                NAMELINK_COMPONENT reactor_development
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT reactor_runtime)

install(EXPORT reactorTargets NAMESPACE reactor:: DESTINATION ${REACTOR_INSTALL_CMAKEDIR}
        FILE reactorTargets.cmake COMPONENT reactor_development)

# The config re-finds what the exported link interface names: Threads always, and libuv
# (PkgConfig::LIBUV) when the uv backend is compiled into a static library.
if(REACTOR_WITH_LIBUV AND NOT BUILD_SHARED_LIBS)
  set(REACTOR_CONFIG_NEEDS_LIBUV ON)
else()
  set(REACTOR_CONFIG_NEEDS_LIBUV OFF)
endif()
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/reactorConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/reactorConfig.cmake
                              INSTALL_DESTINATION ${REACTOR_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/reactorConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/reactorConfig.cmake
              ${PROJECT_BINARY_DIR}/reactorConfigVersion.cmake
        DESTINATION ${REACTOR_INSTALL_CMAKEDIR} COMPONENT reactor_development)

# reactor.pc: everything is substituted now except the prefix, which is written at install
# time so that `cmake --install --prefix P` (and DESTDIR) produce a correct file.
if(REACTOR_WITH_LIBUV)
  set(REACTOR_PC_REQUIRES_PRIVATE "Requires.private: libuv")
else()
  set(REACTOR_PC_REQUIRES_PRIVATE "")
endif()
foreach(dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${dir}}")
    set(REACTOR_PC_${dir} "${CMAKE_INSTALL_${dir}}")
  else()
    set(REACTOR_PC_${dir} "\${prefix}/${CMAKE_INSTALL_${dir}}")
  endif()
endforeach()
set(REACTOR_PC_PREFIX "@CMAKE_INSTALL_PREFIX@")  # kept for the install-time pass
# What the exported target says through INTERFACE_COMPILE_DEFINITIONS, for pkg-config users.
if(REACTOR_DEBUG_CHECKS)
  set(REACTOR_PC_CFLAGS " -DREACTOR_DEBUG_CHECKS=1")
else()
  set(REACTOR_PC_CFLAGS "")
endif()
configure_file(${CMAKE_CURRENT_LIST_DIR}/reactor.pc.in ${PROJECT_BINARY_DIR}/reactor.pc.in @ONLY)
install(CODE "
  configure_file(\"${PROJECT_BINARY_DIR}/reactor.pc.in\" \"${PROJECT_BINARY_DIR}/pc/reactor.pc\" @ONLY)
  file(INSTALL DESTINATION \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig\"
       TYPE FILE FILES \"${PROJECT_BINARY_DIR}/pc/reactor.pc\")
" COMPONENT reactor_development)
