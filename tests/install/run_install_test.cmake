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
