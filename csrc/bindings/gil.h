// Running C++ with the GIL released. The GIL is taken back in plain code, never in a destructor: at
// interpreter exit CPython ends a daemon thread that asks for the GIL by unwinding its stack
// (pthread_exit), and that unwind leaving a destructor (noexcept) would terminate the whole process.
#pragma once
#include <pybind11/pybind11.h>

namespace fastact::bindings {

template <class F>
void without_gil(F&& f) {
  PyThreadState* state = PyEval_SaveThread();
  try {
    f();
  } catch (...) {
    PyEval_RestoreThread(state);
    throw;
  }
  PyEval_RestoreThread(state);
}

}  // namespace fastact::bindings
