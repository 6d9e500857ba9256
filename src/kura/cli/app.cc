// CLI11 application for `kura`.
#include "kura/cli/app.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "kura/base/log.h"
#include "kura/ops/data_dir.h"

namespace kura::cli {
namespace {

int RunInit(const std::filesystem::path& dir, bool json) {
  auto result = ops::InitDataDirectory(dir);
  if (!result.ok()) {
    std::fprintf(stderr, "kura init: %s\n", result.status().message().c_str());
    return 1;
  }
  if (json) {
    nlohmann::json out = {{"data_dir", result->data_dir.string()},
                          {"admin_token", result->admin_token},
                          {"base_url", result->base_url},
                          {"fhir_base_url", result->base_url + "/fhir/R4"},
                          {"certificate", (result->data_dir / "tls/cert.pem").string()}};
    std::cout << out.dump() << std::endl;
  } else {
    std::cout << "Initialized Kura data directory " << result->data_dir.string() << "\n\n"
              << "  Base URL:      " << result->base_url << "/fhir/R4\n"
              << "  Certificate:   " << (result->data_dir / "tls/cert.pem").string()
              << " (self-signed)\n"
              << "  Admin token:   " << result->admin_token << "\n\n"
              << "The admin token is shown only this once; store it in a password manager.\n"
              << "Start the server with: kura serve --data-dir " << result->data_dir.string()
              << std::endl;
  }
  return 0;
}

}  // namespace

int Main(int argc, char** argv, const ServeCommand& serve) {
  CLI::App app{"Kura: a self-hosted personal health record server (FHIR R4 over HTTPS)", "kura"};
  // Requirements are checked after parsing so unknown flags and commands are named first.
  app.require_subcommand(0, 1);
  app.set_help_all_flag("--help-all", "Show help for every subcommand");

  std::filesystem::path init_dir;
  bool init_json = false;
  CLI::App* init = app.add_subcommand("init",
                                      "Create a new data directory (config, keys, TLS "
                                      "certificate, database, admin token)");
  init->add_option("--data-dir", init_dir, "Directory to create (must not exist or be empty)")
      ->envname("KURA_DATA_DIR");
  init->add_flag("--json", init_json, "Print the result as one JSON object");

  ServeArgs serve_args;
  CLI::App* serve_cmd = app.add_subcommand("serve", "Serve the HTTPS API from a data directory");
  serve_cmd->add_option("--data-dir", serve_args.data_dir, "Data directory made by `kura init`")
      ->envname("KURA_DATA_DIR");
  serve_cmd->add_option("--listen", serve_args.listen,
                        "HOST:PORT to listen on (default from kura.toml: 127.0.0.1:8443)");

  std::filesystem::path token_dir;
  std::string token_name = "admin";
  CLI::App* token = app.add_subcommand("token", "Manage API tokens");
  token->require_subcommand(1);
  CLI::App* token_create =
      token->add_subcommand("create", "Issue a new system-administrator API token");
  token_create->add_option("--data-dir", token_dir, "Data directory")->envname("KURA_DATA_DIR");
  token_create->add_option("--name", token_name, "A label for the token (not secret)");

  app.add_subcommand("version", "Print the version");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::CallForAllHelp&) {
    std::cout << app.help("", CLI::AppFormatMode::All);
    return 0;
  } catch (const CLI::ParseError& e) {
    // Subcommand help comes through as CallForHelp on the subcommand.
    std::string what = e.what();
    std::fprintf(stderr, "kura: %s (see kura --help)\n", what.c_str());
    return 2;
  }
  auto usage = [](const std::string& what) {
    std::fprintf(stderr, "kura: %s (see kura --help)\n", what.c_str());
    return 2;
  };
  if (app.get_subcommands().empty()) return usage("a command is required");
  if (init->parsed() && init_dir.empty()) return usage("init: --data-dir is required");
  if (serve_cmd->parsed() && serve_args.data_dir.empty()) {
    return usage("serve: --data-dir is required");
  }
  if (token->parsed() && token_create->parsed() && token_dir.empty()) {
    return usage("token create: --data-dir is required");
  }
  if (app.got_subcommand("version")) {
    std::cout << "kura " << kVersion << std::endl;
    return 0;
  }
  if (app.got_subcommand("init")) return RunInit(init_dir, init_json);
  if (app.got_subcommand("serve")) return serve(serve_args);
  if (token_create->parsed()) {
    auto issued = ops::IssueAdminToken(token_dir, token_name);
    if (!issued.ok()) {
      std::fprintf(stderr, "kura token create: %s\n", issued.status().message().c_str());
      return 1;
    }
    std::cout << *issued << std::endl;
    return 0;
  }
  return 2;
}

}  // namespace kura::cli
