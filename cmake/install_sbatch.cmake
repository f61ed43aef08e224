# Installs launch/slurm/train.sbatch with the installed binary's absolute
# path in it. sbatch runs a spool-directory copy of the script, so the script
# cannot find the binary relative to itself; the path is written in at
# install time, when the final prefix is known (`cmake --install --prefix`).
# Run by cmake_install.cmake, which sets CMAKE_INSTALL_PREFIX and (through
# install(CODE) in CMakeLists.txt) the MPITRAIN_* variables.
set(_bin "${CMAKE_INSTALL_PREFIX}/${MPITRAIN_BINDIR}/mpitrain")
file(READ "${MPITRAIN_SOURCE_DIR}/launch/slurm/train.sbatch" _script)
set(_marker "installed_bin=\"\"")
string(FIND "${_script}" "${_marker}" _at)
if(_at LESS 0)
  message(FATAL_ERROR "launch/slurm/train.sbatch lacks the line ${_marker}")
endif()
string(REPLACE "${_marker}" "installed_bin=\"${_bin}\"" _script "${_script}")
set(_staged "${MPITRAIN_BINARY_DIR}/install-staging/train.sbatch")
file(WRITE "${_staged}" "${_script}")
file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/${MPITRAIN_DATADIR}/mpitrain/slurm"
     TYPE PROGRAM FILES "${_staged}")
