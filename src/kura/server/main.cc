// kura: entry point.
#include "kura/cli/app.h"
#include "kura/server/serve.h"

int main(int argc, char** argv) { return kura::cli::Main(argc, argv, &kura::server::Serve); }
