// CLI11 application for `kura`.
#include "kura/cli/app.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "kura/api/fhir_base.h"
#include "kura/base/clock.h"
#include "kura/base/log.h"
#include "kura/ops/audit_prune.h"
#include "kura/ops/audit_verify.h"
#include "kura/ops/data_dir.h"
#include "kura/ops/search_reindex.h"

namespace kura::cli {
namespace {

// One line for an operator: the message, and the detail when there is one (local tool, so the
// store's or the key provider's explanation helps; neither holds PHI or secrets).
std::string Explain(const Status& s) {
  std::string out = s.message();
  if (!s.internal_detail().empty()) out += " (" + s.internal_detail() + ")";
  for (char& c : out) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return out;
}

// A command that could not do its work: one line on stderr, exit status 1.
int CommandFailed(const char* command, const Status& s) {
  std::fprintf(stderr, "kura %s: %s\n", command, Explain(s).c_str());
  return 1;
}

int RunAuditVerify(const ops::AuditVerifyOptions& options, bool json) {
  StatusOr<ops::AuditVerifyOutcome> run =
      ops::VerifyDataDirectoryAuditLog(options, ProcessEnvironment(), Clock::System());
  if (!run.ok()) {
    std::fprintf(stderr, "kura audit verify: %s\n", Explain(run.status()).c_str());
    return kExitCannotRun;
  }
  const ops::AuditVerifyOutcome& out = *run;
  if (json) {
    nlohmann::ordered_json doc = out.report.ToJson();
    doc["ok"] = out.report.ok();
    doc["verifier_key"] = out.verifier_key.empty() ? nlohmann::ordered_json()
                                                   : nlohmann::ordered_json(out.verifier_key);
    doc["external_checkpoints"] = out.external_checkpoints;
    doc["sink_file"] = out.sink_file.empty() ? nlohmann::ordered_json()
                                             : nlohmann::ordered_json(out.sink_file.string());
    doc["sink_file_found"] = out.sink_file_found;
    doc["sink_file_checkpoint"] = out.sink_file_checkpoint;
    doc["delivery_mark"] = out.delivery_mark.empty()
                               ? nlohmann::ordered_json()
                               : nlohmann::ordered_json(out.delivery_mark.string());
    doc["delivery_mark_record"] = out.delivery_mark_record
                                      ? nlohmann::ordered_json(*out.delivery_mark_record)
                                      : nlohmann::ordered_json();
    doc["resources_checked"] = out.resources_checked;
    doc["resources_unjudged"] = out.resources_unjudged;
    doc["versions_checked"] = out.versions_checked;
    doc["versions_unjudged"] = out.versions_unjudged;
    doc["resources_not_checked"] = out.resources_not_checked.empty()
                                       ? nlohmann::ordered_json()
                                       : nlohmann::ordered_json(out.resources_not_checked);
    doc["recorded"] = out.recorded;
    if (!out.recorded) doc["not_recorded_reason"] = out.not_recorded_reason;
    std::cout << doc.dump() << std::endl;
  } else {
    std::cout << out.report.Summary();
    if (!out.verifier_key.empty()) {
      std::cout << "Checkpoint key: " << out.verifier_key << "\n";
    }
    if (!options.checkpoint_files.empty()) {
      std::cout << "External checkpoints: " << out.external_checkpoints << " from "
                << options.checkpoint_files.size() << " file(s)\n";
    }
    if (!out.sink_file.empty()) {
      std::cout << "JSON-lines audit file " << out.sink_file.string() << ": "
                << (!out.sink_file_found        ? "not found"
                    : out.sink_file_checkpoint  ? "its latest checkpoint and record checked"
                    : out.sink_file_last_record ? "its latest record checked (no checkpoint yet)"
                                                : "empty")
                << "\n";
    }
    if (!out.delivery_mark.empty()) {
      std::cout << "Delivery mark " << out.delivery_mark.string() << ": ";
      if (out.delivery_mark_record) {
        std::cout << "record " << *out.delivery_mark_record << " checked";
      } else {
        std::cout << "none (no sink has received a record yet)";
      }
      std::cout << "\n";
    }
    if (out.resources_not_checked.empty()) {
      std::cout << "Resources: " << out.resources_checked << " current and " << out.versions_checked
                << " stored versions compared with the writes the log records";
      if (out.resources_unjudged > 0 || out.versions_unjudged > 0) {
        std::cout << "; " << out.resources_unjudged << " resources and " << out.versions_unjudged
                  << " versions written before the prune point not judged";
      }
      std::cout << "\n";
    } else {
      std::cout << "Resources: not compared (" << out.resources_not_checked << ")\n";
    }
    if (out.recorded) {
      std::cout << "Recorded: a system/verify record was appended to the audit log\n";
    } else if (out.record_status.ok()) {
      std::cout << "Not recorded: " << out.not_recorded_reason << "\n";
    }
    std::cout << std::flush;
  }
  if (!out.record_status.ok()) {
    // Audit fails closed: a verification that cannot be documented does not count as done.
    std::fprintf(stderr, "kura audit verify: %s\n", Explain(out.record_status).c_str());
    return kExitCannotRun;
  }
  if (!out.report.ok()) {
    std::fprintf(stderr, "kura audit verify: the audit log does not verify (%llu issue(s))\n",
                 static_cast<unsigned long long>(out.report.issue_count));
    return 1;
  }
  return 0;
}

int RunAuditPrune(const std::filesystem::path& dir, bool json) {
  StatusOr<audit::AuditPruneResult> run =
      ops::PruneDataDirectoryAuditLog(dir, ProcessEnvironment(), Clock::System());
  if (!run.ok()) return CommandFailed("audit prune", run.status());
  if (json) {
    nlohmann::ordered_json doc = {{"records_pruned", run->records_pruned},
                                  {"steps", run->steps},
                                  {"first_retained_sequence", run->first_retained_sequence},
                                  {"held_back_by", run->held_back_by}};
    std::cout << doc.dump() << std::endl;
    return 0;
  }
  if (run->steps == 0) {
    std::cout << "Nothing to prune";
  } else {
    std::cout << "Pruned " << run->records_pruned << " record(s)";
  }
  std::cout << "; the audit log starts at sequence " << run->first_retained_sequence << "\n";
  if (!run->held_back_by.empty()) {
    std::cout << "Older records kept: " << run->held_back_by << "\n";
  }
  std::cout << std::flush;
  return 0;
}

nlohmann::ordered_json SinkJson(const ops::AuditSinkPosition& sink) {
  auto number = [](const std::optional<uint64_t>& n) {
    return n ? nlohmann::ordered_json(*n) : nlohmann::ordered_json();
  };
  return {{"name", sink.name},
          {"configured", sink.configured},
          {"next_sequence", number(sink.next_sequence)},
          {"checkpoint_tree_size", number(sink.checkpoint_tree_size)}};
}

int RunAuditSinks(const std::filesystem::path& dir, bool json) {
  StatusOr<std::vector<ops::AuditSinkPosition>> sinks =
      ops::ListAuditSinks(dir, ProcessEnvironment());
  if (!sinks.ok()) return CommandFailed("audit sinks", sinks.status());
  if (json) {
    nlohmann::ordered_json doc = nlohmann::ordered_json::array();
    for (const ops::AuditSinkPosition& sink : *sinks) doc.push_back(SinkJson(sink));
    std::cout << doc.dump() << std::endl;
    return 0;
  }
  if (sinks->empty()) std::cout << "No audit export sink is configured or has a position\n";
  for (const ops::AuditSinkPosition& sink : *sinks) {
    std::cout << sink.name << (sink.configured ? " (configured)" : " (not configured)")
              << ": next record "
              << (sink.next_sequence ? std::to_string(*sink.next_sequence) : "none yet")
              << ", last checkpoint "
              << (sink.checkpoint_tree_size ? std::to_string(*sink.checkpoint_tree_size)
                                            : "none yet")
              << "\n";
  }
  std::cout << std::flush;
  return 0;
}

int RunForgetSink(const std::filesystem::path& dir, const std::string& name, bool json) {
  StatusOr<ops::AuditSinkPosition> was = ops::ForgetAuditSink(dir, ProcessEnvironment(), name);
  if (!was.ok()) return CommandFailed("audit forget-sink", was.status());
  if (json) {
    std::cout << SinkJson(*was).dump() << std::endl;
    return 0;
  }
  std::cout << "Forgot audit sink " << was->name << " (it had reached record "
            << (was->next_sequence ? std::to_string(*was->next_sequence) : "none") << ")"
            << std::endl;
  return 0;
}

int RunReindex(const std::filesystem::path& dir, bool json) {
  StatusOr<ops::ReindexResult> run = ops::ReindexDataDirectory(dir, ProcessEnvironment());
  if (!run.ok()) return CommandFailed("fhir reindex", run.status());
  if (json) {
    nlohmann::ordered_json doc = {{"resources", run->resources},
                                  {"register_fingerprint", run->fingerprint},
                                  {"previous_register_fingerprint", run->previous_fingerprint}};
    std::cout << doc.dump() << std::endl;
    return 0;
  }
  std::cout << "Rebuilt the search indexes of " << run->resources
            << " current resource(s) under data register " << run->fingerprint.substr(0, 16);
  if (run->previous_fingerprint == run->fingerprint) {
    std::cout << " (unchanged)";
  }
  std::cout << std::endl;
  return 0;
}

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
                          {"fhir_base_url", api::FhirBaseUrl(result->base_url)},
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

// A subcommand that takes --data-dir (or KURA_DATA_DIR) and --json.
CLI::App* AddDataDirCommand(CLI::App& parent, const std::string& name,
                            const std::string& description, std::filesystem::path& data_dir,
                            bool& json) {
  CLI::App* command = parent.add_subcommand(name, description);
  command->add_option("--data-dir", data_dir, "Data directory")->envname("KURA_DATA_DIR");
  command->add_flag("--json", json, "Print the result as one JSON object");
  return command;
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

  ops::AuditVerifyOptions verify_options;
  bool verify_json = false;
  bool verify_no_record = false;
  CLI::App* audit = app.add_subcommand("audit", "Work with the tamper-evident audit log");
  audit->require_subcommand(1);
  CLI::App* audit_verify = audit->add_subcommand(
      "verify",
      "Verify the stored audit log against its signed checkpoints (exit 0: verified, 1: "
      "tampering found, 2: usage, 3: could not run)");
  audit_verify->add_option("--data-dir", verify_options.data_dir, "Data directory")
      ->envname("KURA_DATA_DIR");
  audit_verify->add_flag("--json", verify_json, "Print the report as one JSON object");
  audit_verify->add_option("--checkpoints", verify_options.checkpoint_files,
                           "A file of exported checkpoints (SIEM or JSON-lines sink copy; "
                           "repeatable); needed to detect a truncated tail");
  audit_verify->add_flag("--no-record", verify_no_record,
                         "Do not append the verify record (for forensic copies)");
  bool verify_no_sink_file = false;
  bool verify_no_delivery_mark = false;
  bool verify_no_resources = false;
  audit_verify->add_flag("--no-resources", verify_no_resources,
                         "Do not compare the resource tables with the writes the log records");
  audit_verify->add_flag("--no-sink-file", verify_no_sink_file,
                         "Do not check against the end of the configured audit.json_lines_file "
                         "(checked by default when it exists)");
  audit_verify->add_flag("--no-delivery-mark", verify_no_delivery_mark,
                         "Do not check against the data directory's audit-delivered mark "
                         "(checked by default when it exists)");
  std::filesystem::path prune_dir;
  bool prune_json = false;
  CLI::App* audit_prune = AddDataDirCommand(
      *audit, "prune",
      "Delete audit records older than audit.retention_days (never what an export sink has not "
      "received); the server also does this daily",
      prune_dir, prune_json);

  std::filesystem::path sinks_dir;
  bool sinks_json = false;
  CLI::App* audit_sinks = AddDataDirCommand(
      *audit, "sinks",
      "List the audit export sinks: how far each got, and whether kura.toml still configures it",
      sinks_dir, sinks_json);
  std::filesystem::path forget_dir;
  bool forget_json = false;
  std::string forget_name;
  CLI::App* audit_forget = AddDataDirCommand(
      *audit, "forget-sink",
      "Remove the stored position of an export sink that is no longer configured, so retention "
      "stops keeping records for it",
      forget_dir, forget_json);
  audit_forget->add_option("--name", forget_name, "The sink (as `kura audit sinks` lists it)");

  std::filesystem::path reindex_dir;
  bool reindex_json = false;
  CLI::App* fhir = app.add_subcommand("fhir", "Maintain the FHIR data");
  fhir->require_subcommand(1);
  CLI::App* fhir_reindex = AddDataDirCommand(
      *fhir, "reindex",
      "Rebuild every current resource's search indexes under the configured data register (after "
      "changing it; the server must be stopped)",
      reindex_dir, reindex_json);

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
  if (audit_verify->parsed() && verify_options.data_dir.empty()) {
    return usage("audit verify: --data-dir is required");
  }
  if (audit_prune->parsed() && prune_dir.empty()) {
    return usage("audit prune: --data-dir is required");
  }
  if (audit_sinks->parsed() && sinks_dir.empty()) {
    return usage("audit sinks: --data-dir is required");
  }
  if (audit_forget->parsed() && (forget_dir.empty() || forget_name.empty())) {
    return usage("audit forget-sink: --data-dir and --name are required");
  }
  if (fhir_reindex->parsed() && reindex_dir.empty()) {
    return usage("fhir reindex: --data-dir is required");
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
      std::fprintf(stderr, "kura token create: %s; no token was issued\n",
                   issued.status().message().c_str());
      return 1;
    }
    std::cout << *issued << std::endl;
    return 0;
  }
  if (audit_verify->parsed()) {
    verify_options.record = !verify_no_record;
    verify_options.use_sink_file = !verify_no_sink_file;
    verify_options.use_delivery_mark = !verify_no_delivery_mark;
    verify_options.check_resources = !verify_no_resources;
    return RunAuditVerify(verify_options, verify_json);
  }
  if (audit_prune->parsed()) return RunAuditPrune(prune_dir, prune_json);
  if (audit_sinks->parsed()) return RunAuditSinks(sinks_dir, sinks_json);
  if (audit_forget->parsed()) return RunForgetSink(forget_dir, forget_name, forget_json);
  if (fhir_reindex->parsed()) return RunReindex(reindex_dir, reindex_json);
  return 2;
}

}  // namespace kura::cli
