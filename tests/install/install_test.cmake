# SPDX-License-Identifier: MIT
# Registers the install tests. Included from tests/CMakeLists.txt.
#   InstallConsumer: install this build (its flags: sanitizers, shared or static) into a
#     scratch prefix, then build and run tests/install/ against it with find_package, and
#     once more with pkg-config.
#   InstallReadmeCommands: README.md's own build, install and consume commands, as written.
add_test(NAME InstallConsumer
         COMMAND ${CMAKE_COMMAND}
                 -DBUILD_DIR=${PROJECT_BINARY_DIR}
                 -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/install-test
                 -DCONSUMER_DIR=${CMAKE_CURRENT_LIST_DIR}
                 -DCONFIG=$<CONFIG>
                 -DGENERATOR=${CMAKE_GENERATOR}
                 -DCXX=${CMAKE_CXX_COMPILER}
                 "-DCXX_FLAGS=${CMAKE_CXX_FLAGS}"
                 "-DEXE_LINKER_FLAGS=${CMAKE_EXE_LINKER_FLAGS}"
                 -DLIBDIR=${CMAKE_INSTALL_LIBDIR}
                 -DSTATIC=$<STREQUAL:$<TARGET_PROPERTY:reactor,TYPE>,STATIC_LIBRARY>
                 -DPKG_CONFIG=${PKG_CONFIG_EXECUTABLE}
                 -DTOOLS=${REACTOR_BUILD_TOOLS}
                 -DVERSION=${PROJECT_VERSION}
                 -P ${CMAKE_CURRENT_LIST_DIR}/run_install_test.cmake)
set_tests_properties(InstallConsumer PROPERTIES TIMEOUT 300 LABELS install)

# README.md's build, install and consume commands, run as written (readme_commands.py says
# how blocks are marked and the one substitution it makes). It builds the library and tools
# once more with -j$(nproc), so it runs alone.
add_test(NAME InstallReadmeCommands
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/readme_commands.py
                 --readme ${PROJECT_SOURCE_DIR}/README.md
                 --source ${PROJECT_SOURCE_DIR}
                 --work ${CMAKE_CURRENT_BINARY_DIR}/readme-test)
set_tests_properties(InstallReadmeCommands PROPERTIES TIMEOUT 1200 LABELS install RUN_SERIAL TRUE)
