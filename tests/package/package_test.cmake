# SPDX-License-Identifier: MIT
# Registers the exported-symbols test: builds the library once more as a shared library, in
# its own build tree, and checks with nm that it exports the public API and no
# reactor::detail symbol. Included from tests/CMakeLists.txt.
find_program(REACTOR_NM NAMES nm)
if(NOT REACTOR_NM)
  message(STATUS "nm not found: the SharedLibraryExports test is not registered")
  return()
endif()
add_test(NAME SharedLibraryExports
         COMMAND ${CMAKE_COMMAND}
                 -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
                 -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/package-test
                 -DGENERATOR=${CMAKE_GENERATOR}
                 -DCXX=${CMAKE_CXX_COMPILER}
                 "-DCXX_FLAGS=${CMAKE_CXX_FLAGS}"
                 "-DLAUNCHER=${CMAKE_CXX_COMPILER_LAUNCHER}"
                 -DWITH_LIBUV=${REACTOR_WITH_LIBUV}
                 -DNM=${REACTOR_NM}
                 -DCONSUMER=${CMAKE_CURRENT_LIST_DIR}/../install/consumer.cpp
                 -P ${CMAKE_CURRENT_LIST_DIR}/check_exports.cmake)
set_tests_properties(SharedLibraryExports PROPERTIES TIMEOUT 900 LABELS package)

# Every source file carries its SPDX license line (LICENSE is MIT).
add_test(NAME LicenseHeaders
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/license_headers.py ${PROJECT_SOURCE_DIR})
set_tests_properties(LicenseHeaders PROPERTIES TIMEOUT 60 LABELS package)
