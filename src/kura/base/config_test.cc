#include "kura/base/config.h"

#include <gtest/gtest.h>

namespace kura {
namespace {

TEST(ConfigTest, DefaultTomlRoundTrips) {
  Config defaults;
  auto c = ParseConfig(DefaultConfigToml(defaults), "/data", {});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->server.listen, "127.0.0.1:8443");
  EXPECT_EQ(c->server.max_body_bytes, 8 * 1024 * 1024);
  EXPECT_EQ(c->tls.certificate, "tls/cert.pem");
  EXPECT_EQ(ResolvePath(*c, c->tls.certificate), "/data/tls/cert.pem");
}

TEST(ConfigTest, EnvironmentOverrides) {
  auto c = ParseConfig("[server]\nlisten = \"127.0.0.1:1\"\n", "/d",
                       {{"KURA_SERVER_LISTEN", "0.0.0.0:9443"}, {"KURA_DATA_DIR", "/x"}});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->server.listen, "0.0.0.0:9443");
}

TEST(ConfigTest, UnknownKeysAndBadValuesNameTheKey) {
  auto unknown = ParseConfig("[server]\nlistn = \"x:1\"\n", "/d", {});
  EXPECT_EQ(unknown.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("server.listn"), std::string::npos);

  auto section = ParseConfig("[sever]\nlisten = \"x:1\"\n", "/d", {});
  EXPECT_NE(section.status().message().find("sever"), std::string::npos);

  auto type = ParseConfig("[server]\nmax_body_bytes = \"big\"\n", "/d", {});
  EXPECT_NE(type.status().message().find("server.max_body_bytes"), std::string::npos);

  auto range = ParseConfig("", "/d", {{"KURA_SERVER_MAX_BODY_BYTES", "12"}});
  EXPECT_NE(range.status().message().find("server.max_body_bytes"), std::string::npos);

  auto env_unknown = ParseConfig("", "/d", {{"KURA_SERVER_LISTN", "x"}});
  EXPECT_NE(env_unknown.status().message().find("KURA_SERVER_LISTN"), std::string::npos);

  auto choice = ParseConfig("[log]\nlevel = \"loud\"\n", "/d", {});
  EXPECT_NE(choice.status().message().find("log.level"), std::string::npos);

  auto syntax = ParseConfig("[server\n", "/d", {});
  EXPECT_EQ(syntax.status().code(), StatusCode::kInvalidArgument);
}

TEST(ConfigTest, AuditSinksComeFromTheIssueNamedEnvironmentVariables) {
  auto c = ParseConfig(
      "", "/d",
      {{"KURA_AUDIT_SYSLOG_URL", "tls://siem.example:6514"}, {"KURA_AUDIT_SYSLOG_FORMAT", "cef"}});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->audit.syslog_url, "tls://siem.example:6514");
  EXPECT_EQ(c->audit.syslog_format, "cef");
  EXPECT_EQ(c->audit.retention_days, 2192);

  auto scheme = ParseConfig("", "/d", {{"KURA_AUDIT_SYSLOG_URL", "udp://siem:514"}});
  EXPECT_NE(scheme.status().message().find("audit.syslog_url"), std::string::npos);
  auto format = ParseConfig("", "/d", {{"KURA_AUDIT_SYSLOG_FORMAT", "leef"}});
  EXPECT_NE(format.status().message().find("audit.syslog_format"), std::string::npos);
  auto half_mtls = ParseConfig("[audit]\nsyslog_client_certificate = \"c.pem\"\n", "/d", {});
  EXPECT_NE(half_mtls.status().message().find("audit.syslog_client_key"), std::string::npos);
}

}  // namespace
}  // namespace kura
