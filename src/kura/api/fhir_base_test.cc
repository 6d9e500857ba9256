// The FHIR base URL built from the configured public base URL.
#include "kura/api/fhir_base.h"

#include <gtest/gtest.h>

namespace kura::api {
namespace {

TEST(FhirBaseTest, TrailingSlashesOfThePublicBaseAreDropped) {
  EXPECT_EQ(FhirBaseUrl("https://localhost:8443"), "https://localhost:8443/fhir/R4");
  EXPECT_EQ(FhirBaseUrl("https://ehr.example/"), "https://ehr.example/fhir/R4");
  EXPECT_EQ(FhirBaseUrl("https://ehr.example/kura//"), "https://ehr.example/kura/fhir/R4");
  EXPECT_EQ(TrimmedPublicBase("https://ehr.example/kura/"), "https://ehr.example/kura");
  EXPECT_EQ(TrimmedPublicBase("/"), "");
  EXPECT_EQ(FhirBaseUrl(""), "/fhir/R4");
}

}  // namespace
}  // namespace kura::api
