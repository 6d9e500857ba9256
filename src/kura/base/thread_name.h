// Names the calling thread (as `top -H`, `perf` and /proc/PID/task/*/comm show it), so an
// operator can tell the store's writer from the I/O threads.
#pragma once

namespace kura {

// `name` is cut to the kernel's 15 characters. Best effort: failure changes nothing else.
void NameThisThread(const char* name);

}  // namespace kura
