# SPDX-License-Identifier: MIT
# cmake -P script behind the SharedLibraryExports test (see package_test.cmake for its
# inputs). With -DLIBRARY=path/libreactor.so it only checks that file (no build).
cmake_minimum_required(VERSION 3.25)

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${ARGN}\n${out}\n${err}")
  endif()
  message(STATUS "${what}: ok")
  set(run_output "${out}" PARENT_SCOPE)
endfunction()

if(NOT LIBRARY)
  # 1. The library alone, shared, Release, with the flags of the build that runs the test.
  #    The tree is kept between runs, so a second run only rebuilds what changed.
  set(build ${WORK_DIR}/shared)
  run("configure shared library" ${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${build} -G ${GENERATOR}
      -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DCMAKE_CXX_COMPILER=${CXX}
      "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}" "-DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER}"
      -DREACTOR_WITH_LIBUV=${WITH_LIBUV} -DREACTOR_BUILD_TESTS=OFF -DREACTOR_BUILD_TOOLS=OFF
      -DREACTOR_BUILD_EXAMPLES=OFF -DREACTOR_BUILD_BENCH=OFF)
  run("build shared library" ${CMAKE_COMMAND} --build ${build} --target reactor)
  file(GLOB LIBRARY ${build}/reactor/libreactor.so)
  if(NOT LIBRARY)
    message(FATAL_ERROR "no ${build}/reactor/libreactor.so")
  endif()
endif()

# 2. What it exports.
run("nm" ${NM} -D --defined-only -C ${LIBRARY})
string(STRIP "${run_output}" exports)
string(REPLACE ";" "\\;" exports "${exports}")
string(REPLACE "\n" ";" exports "${exports}")
list(LENGTH exports count)
message(STATUS "${LIBRARY} exports ${count} symbols")

# No symbol of the reactor::detail namespace (its functions, the vtables and typeinfo of its
# classes): those are implementation. A public class's member may still name a detail type
# among its parameters: Reactor::watch_callable() takes the detail::IoCallable the inline
# template watch() builds, as libstdc++'s exports name std::__detail types.
set(leaked ${exports})
list(FILTER leaked INCLUDE REGEX
     "^[0-9a-fA-F]+ [A-Za-z] (typeinfo for |typeinfo name for |vtable for |VTT for |guard variable for )?reactor::detail::")
list(LENGTH leaked leaked_count)
if(leaked_count GREATER 0)
  list(JOIN leaked "\n" leaked_text)
  message(FATAL_ERROR "${leaked_count} exported symbols name reactor::detail:\n${leaked_text}")
endif()

# The public API is there: a class's constructor, a free function of each layer, the typeinfo
# of the base classes a program derives from (those with a key function in the library).
foreach(wanted "reactor::Reactor::Reactor\\(" "reactor::version\\(\\)" "reactor::version_string\\(\\)"
               "reactor::set_log_handler\\(" "reactor::make_backend\\(" "reactor::Connection::"
               "reactor::Address::" "reactor::StreamServer::StreamServer\\("
               "typeinfo for reactor::StreamRequestHandler" "typeinfo for reactor::Backend")
  set(found ${exports})
  list(FILTER found INCLUDE REGEX "${wanted}")
  if(NOT found)
    message(FATAL_ERROR "not exported: ${wanted}")
  endif()
endforeach()
message(STATUS "no reactor::detail symbol; the public API checked is exported")

# 3. The exported set is enough for a program: build and run the install test's consumer
#    against this shared library.
if(CONSUMER AND build)
  separate_arguments(flags UNIX_COMMAND "${CXX_FLAGS}")
  get_filename_component(libdir ${LIBRARY} DIRECTORY)
  run("link a program to the shared library" ${CXX} -std=c++20 ${flags} -I${SOURCE_DIR}
      -I${build}/include ${CONSUMER} -L${libdir} -lreactor -Wl,-rpath,${libdir} -pthread
      -o ${WORK_DIR}/consumer)
  run("run it" ${WORK_DIR}/consumer)
endif()
