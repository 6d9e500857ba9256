// What a fuzz target does when an input breaks one of its checks beyond "no crash": say which,
// and abort, so libFuzzer keeps the input as a crash-* file.
#pragma once

#include <cstdio>
#include <cstdlib>

[[noreturn]] inline void PropertyBroken(const char* what) {
  std::fprintf(stderr, "property broken: %s\n", what);
  std::abort();
}
