# scripts/deb/stage.cmake: run by CPack (CPACK_PRE_BUILD_SCRIPTS) on the staged
# files of the .deb, after the install and before the package is built. It
# adds what Debian policy asks of a binary package and `cmake --install` does
# not do: man pages compressed with `gzip -9n` (policy 12.1), and the copyright
# file and compressed changelog in /usr/share/doc/renewd (policy 12.5, 12.7),
# and lintian's overrides (each with its reason) in /usr/share/lintian/overrides.
# Binaries are stripped by CPack itself (CPACK_STRIP_FILES).
# Inputs: CPACK_TEMPORARY_INSTALL_DIRECTORY (the staging root, set by CPack),
# CPACK_RENEWD_DEB_DIR (scripts/deb, set in the root CMakeLists.txt).
set(root "${CPACK_TEMPORARY_INSTALL_DIRECTORY}")
find_program(GZIP gzip REQUIRED)

# gzip -9n: best compression, no name or time stamp, so the bytes are reproducible.
function(gzip_file path)
  execute_process(COMMAND ${GZIP} -9nf "${path}" RESULT_VARIABLE r)
  if(NOT r EQUAL 0)
    message(FATAL_ERROR "gzip ${path} failed")
  endif()
endfunction()

file(GLOB pages "${root}/usr/share/man/man[0-9]/*.[0-9]")
foreach(page ${pages})
  gzip_file("${page}")
endforeach()

set(doc "${root}/usr/share/doc/renewd")
file(MAKE_DIRECTORY "${doc}")
file(COPY_FILE "${CPACK_RENEWD_DEB_DIR}/copyright" "${doc}/copyright")
file(COPY_FILE "${CPACK_RENEWD_DEB_DIR}/changelog" "${doc}/changelog.Debian")
gzip_file("${doc}/changelog.Debian")

set(overrides "${root}/usr/share/lintian/overrides")
file(MAKE_DIRECTORY "${overrides}")
file(COPY_FILE "${CPACK_RENEWD_DEB_DIR}/lintian-overrides" "${overrides}/renewd")
file(CHMOD "${doc}/copyright" "${doc}/changelog.Debian.gz" "${overrides}/renewd"
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
