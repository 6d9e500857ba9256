# kura_audit_export: the audit log's SIEM exports (RFC 5424 syslog, CEF, JSON lines), the
# syslog TCP/TLS client, the JSON-lines file sink and the exporter that ships the stored log to
# them as a durable outbox. docs/formats/audit-export.md.
# Included from this folder's CMakeLists.txt.
add_library(kura_audit_export STATIC
  export_format.cc
  syslog_client.cc
  json_lines_sink.cc
  exporter.cc)
target_link_libraries(kura_audit_export
  PUBLIC kura_audit
  PRIVATE Boost::boost OpenSSL::SSL OpenSSL::Crypto Threads::Threads)
# The CEF header's Device Version defaults to the version being built.
target_compile_definitions(kura_audit_export PRIVATE KURA_VERSION="${PROJECT_VERSION}")

kura_unit_test(kura_audit_export_test
  SOURCES export_format_test.cc json_lines_sink_test.cc
  LIBS kura_audit_export)
target_compile_definitions(kura_audit_export_test PRIVATE KURA_VERSION="${PROJECT_VERSION}")

# Starts a real rsyslogd (Debian packages rsyslog and rsyslog-openssl, in the Makefile's
# TEST_DEPS) and the openssl command line tool for throwaway certificates.
kura_unit_test(kura_syslog_client_test
  SOURCES syslog_client_test.cc
  LIBS kura_audit_export Boost::boost OpenSSL::Crypto)

# The exporter against a real SqliteStore + AuditLog and a real rsyslogd (rsyslog_fixture.h).
kura_unit_test(kura_audit_exporter_test
  SOURCES exporter_test.cc
  LIBS kura_audit_export SQLite::SQLite3 nlohmann_json::nlohmann_json)
