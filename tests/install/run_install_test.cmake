# SPDX-License-Identifier: MIT
# cmake -P script behind the InstallConsumer test (see install_test.cmake for its inputs).
cmake_minimum_required(VERSION 3.25)

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${ARGN}\n${out}")
  endif()
  message(STATUS "${what}: ok")
  set(run_output "${out}" PARENT_SCOPE)
endfunction()

set(prefix ${WORK_DIR}/prefix)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

# 1. Install the build as it is.
set(config_args)
if(CONFIG)
  set(config_args --config ${CONFIG})
endif()
run("install" ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix} ${config_args})
foreach(f include/reactor/reactor.hpp include/reactor/core/reactor.hpp
          include/reactor/core/detail/loop_ref.hpp
          ${LIBDIR}/cmake/reactor/reactorConfig.cmake
          ${LIBDIR}/cmake/reactor/reactorConfigVersion.cmake
          ${LIBDIR}/pkgconfig/reactor.pc)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "not installed: ${f}")
  endif()
endforeach()

# The command-line tools are installed too, and run from the prefix (a shared libreactor is
# found through their RPATH).
if(TOOLS)
  foreach(tool reactor-serve reactor-client)
    if(NOT EXISTS ${prefix}/bin/${tool})
      message(FATAL_ERROR "not installed: bin/${tool}")
    endif()
  endforeach()
  run("installed reactor-serve --help" ${prefix}/bin/reactor-serve --help)
  if(NOT run_output MATCHES "reactor-serve")
    message(FATAL_ERROR "reactor-serve --help printed no usage:\n${run_output}")
  endif()
endif()

# The umbrella header includes every installed public header: all but itself, those under a
# detail/ folder, and core/handler_call.hpp (namespace detail, for the library's own files).
file(READ ${prefix}/include/reactor/reactor.hpp umbrella)
file(GLOB_RECURSE headers RELATIVE ${prefix}/include ${prefix}/include/reactor/*.hpp)
set(not_included)
foreach(h IN LISTS headers)
  if(h MATCHES "/detail/" OR h STREQUAL "reactor/reactor.hpp"
     OR h STREQUAL "reactor/core/handler_call.hpp")
    continue()
  endif()
  string(FIND "${umbrella}" "#include \"${h}\"" at)
  if(at EQUAL -1)
    list(APPEND not_included ${h})
  endif()
endforeach()
if(not_included)
  message(FATAL_ERROR "reactor/reactor.hpp does not include: ${not_included}")
endif()
message(STATUS "umbrella header: ok")

# 2. find_package(reactor) from the prefix, with the flags of this build (sanitizers).
run("configure consumer" ${CMAKE_COMMAND} -S ${CONSUMER_DIR} -B ${WORK_DIR}/build -G ${GENERATOR}
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_BUILD_TYPE=${CONFIG}
    "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}" "-DCMAKE_EXE_LINKER_FLAGS=${EXE_LINKER_FLAGS}")
run("build consumer" ${CMAKE_COMMAND} --build ${WORK_DIR}/build ${config_args})
run("run consumer" ${WORK_DIR}/build/consumer)
if(NOT run_output MATCHES "backend: (select|poll|epoll|uv)")
  message(FATAL_ERROR "consumer printed no backend name:\n${run_output}")
endif()
message(STATUS "${run_output}")

# The package's version file: find_package(reactor MAJOR.MINOR) accepts this release and
# rejects another minor or major version (0.x: minor versions are not compatible).
if(VERSION)
  string(REGEX MATCH "^([0-9]+)\\.([0-9]+)" _ "${VERSION}")
  set(major ${CMAKE_MATCH_1})
  set(minor ${CMAKE_MATCH_2})
  math(EXPR next_minor "${minor} + 1")
  math(EXPR next_major "${major} + 1")
  set(rejected ${major}.${next_minor} ${next_major}.0)
  if(minor GREATER 0)
    math(EXPR previous_minor "${minor} - 1")
    list(APPEND rejected ${major}.${previous_minor})
  endif()
  foreach(wanted ${major}.${minor} ${VERSION} ${rejected})
    set(dir ${WORK_DIR}/version-${wanted})
    file(MAKE_DIRECTORY ${dir})
    file(WRITE ${dir}/CMakeLists.txt "cmake_minimum_required(VERSION 3.25)\n"
                                     "project(version_probe LANGUAGES CXX)\n"
                                     "find_package(reactor ${wanted} REQUIRED)\n")
    execute_process(COMMAND ${CMAKE_COMMAND} -S ${dir} -B ${dir}/build -G ${GENERATOR}
                            -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_CXX_COMPILER=${CXX}
                    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
    if(wanted IN_LIST rejected)
      if(rc EQUAL 0 OR NOT out MATCHES "compatible with requested version")
        message(FATAL_ERROR "find_package(reactor ${wanted}) accepted version ${VERSION}:\n${out}")
      endif()
    elseif(NOT rc EQUAL 0)
      message(FATAL_ERROR "find_package(reactor ${wanted}) failed:\n${out}")
    endif()
  endforeach()
  list(JOIN rejected ", " rejected_text)
  message(STATUS "find_package(reactor ${major}.${minor}) accepts ${VERSION}, rejects ${rejected_text}: ok")
endif()

if(readme_arg)
  execute_process(COMMAND ${CMAKE_COMMAND} -E echo "hello from a pipe"
                  COMMAND ${WORK_DIR}/build/readme_example
                  RESULTS_VARIABLE rcs OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
  if(NOT rcs STREQUAL "0;0" OR NOT out MATCHES "hello from a pipe")
    message(FATAL_ERROR "README example failed (${rcs}):\n${out}\n${err}")
  endif()
  message(STATUS "run README example: ok")
endif()

# 3. The same consumer compiled by hand with pkg-config. A static libreactor needs its
#    private dependencies (libuv) on the link line: that is what --static is for.
if(NOT PKG_CONFIG)
  find_program(PKG_CONFIG pkg-config REQUIRED)
endif()
set(ENV{PKG_CONFIG_PATH} ${prefix}/${LIBDIR}/pkgconfig)
set(static_arg)
if(STATIC)
  set(static_arg --static)
endif()
run("pkg-config" ${PKG_CONFIG} ${static_arg} --cflags --libs reactor)
separate_arguments(pc_flags UNIX_COMMAND "${run_output}")
separate_arguments(cxx_flags UNIX_COMMAND "${CXX_FLAGS} ${EXE_LINKER_FLAGS}")
set(rpath)
if(NOT STATIC)  # a shared libreactor in a scratch prefix: tell the loader where it is
  run("pkg-config libdir" ${PKG_CONFIG} --variable=libdir reactor)
  string(STRIP "${run_output}" libdir)
  set(rpath -Wl,-rpath,${libdir})
endif()
run("compile with pkg-config" ${CXX} -std=c++20 ${cxx_flags} ${CONSUMER_DIR}/consumer.cpp
    ${pc_flags} ${rpath} -o ${WORK_DIR}/consumer-pc)
run("run pkg-config consumer" ${WORK_DIR}/consumer-pc)
message(STATUS "${run_output}")
