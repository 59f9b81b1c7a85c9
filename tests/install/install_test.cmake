# Registers the install test: install this build into a scratch prefix, then build and run
# tests/install/ against it with find_package, and once more with pkg-config.
# Included from tests/CMakeLists.txt.
add_test(NAME InstallConsumer
         COMMAND ${CMAKE_COMMAND}
                 -DBUILD_DIR=${PROJECT_BINARY_DIR}
                 -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/install-test
                 -DCONSUMER_DIR=${CMAKE_CURRENT_LIST_DIR}
                 -DREADME=${PROJECT_SOURCE_DIR}/README.md
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
