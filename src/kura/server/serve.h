// `kura serve`: configuration -> wiring of every layer -> HTTPS until SIGTERM.
#pragma once

#include "kura/cli/app.h"

namespace kura::server {

// Returns the process exit code: 0 after a clean drain, 1 when start-up fails (the reason is
// printed as one line and logged).
int Serve(const cli::ServeArgs& args);

}  // namespace kura::server
