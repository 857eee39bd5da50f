#!/usr/bin/env bash
# The Python suite against an AddressSanitizer + UBSan build of the extension: every test's calls run
# through instrumented engines, kernels and bindings, so an out-of-bounds access, a use after free or
# undefined behaviour fails the run with a report, instead of passing by luck.
#
#   tools/asan_pytest.sh [BUILD_DIR] [pytest arguments...]
#
# BUILD_DIR (default .ci-build/asan) is configured and built here if needed:
#   cmake -S . -B BUILD_DIR -DFASTACT_SANITIZE=ON -DFASTACT_BUILD_PYTHON=ON -DFASTACT_ISAS=<one ISA> ...
# It needs pybind11 and the test extras in the active Python environment. Leak detection is off: the
# interpreter itself keeps memory until exit.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-.ci-build/asan}
shift || true
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S . -B "$build" -DFASTACT_SANITIZE=ON -DFASTACT_BUILD_PYTHON=ON -DFASTACT_BUILD_TESTS=ON \
    -DFASTACT_CUDA=OFF -DFASTACT_ISAS="${FASTACT_ISAS:-avx512}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -Dpybind11_DIR="$(python -c 'import pybind11; print(pybind11.get_cmake_dir())')" >/dev/null
fi
cmake --build "$build" -j"$(nproc)" --target _core >/dev/null
pkg=$(mktemp -d)
trap 'rm -rf "$pkg"' EXIT
mkdir "$pkg/fastact" "$pkg/reports"
cp python/fastact/*.py python/fastact/*.pyi python/fastact/py.typed "$pkg/fastact/"
cp "$build"/_core*.so "$pkg/fastact/"
# ASan's runtime first, and libstdc++ with it: Python is C, so libstdc++ would only arrive with the
# extension, after ASan had looked for the __cxa_throw it intercepts (its CHECK fails at the first throw)
asan="$(${CXX:-g++} -print-file-name=libasan.so) $(${CXX:-g++} -print-file-name=libstdc++.so)"
# reports go to files: pytest captures the test's stderr, and an aborting process never shows it
export PYTHONPATH="$pkg${PYTHONPATH:+:$PYTHONPATH}" LD_PRELOAD="$asan"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:log_path=$pkg/reports/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$pkg/reports/ubsan"
python -c "import fastact; assert fastact.__file__.startswith('$pkg'), fastact.__file__; print('fastact from', fastact.__file__, 'ISA', fastact.get_isa())"
rc=0
python -m pytest -q -p no:cacheprovider "$@" || rc=$?
if compgen -G "$pkg/reports/*" >/dev/null; then
  echo "sanitizer reports:"
  cat "$pkg"/reports/*
  rc=1
fi
exit $rc
