# Installs headers, the library, an exported CMake package (goro::goro, and
# goro::nats when it was built) and goro.pc.
include(CMakePackageConfigHelpers)

set(GORO_INSTALL_TARGETS goro)
if(TARGET goro_nats)
  list(APPEND GORO_INSTALL_TARGETS goro_nats)
endif()
install(TARGETS ${GORO_INSTALL_TARGETS} EXPORT goroTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY include/goro DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${PROJECT_BINARY_DIR}/include/goro/export.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/goro)
install(EXPORT goroTargets NAMESPACE goro:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/goro)

configure_package_config_file(cmake/goroConfig.cmake.in
  ${PROJECT_BINARY_DIR}/goroConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/goro)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/goroConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/goroConfig.cmake ${PROJECT_BINARY_DIR}/goroConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/goro)

if(BUILD_SHARED_LIBS)
  set(GORO_PC_DEFINES "")
else()
  set(GORO_PC_DEFINES "-DGORO_STATIC_DEFINE")
endif()
# The .pc file finds the prefix relative to itself, so the install is relocatable.
file(RELATIVE_PATH GORO_PC_UP "/root/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/root")
configure_file(cmake/goro.pc.in ${PROJECT_BINARY_DIR}/goro.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/goro.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
