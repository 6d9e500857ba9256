#include "kura/fhir/r4_tables.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <span>
#include <string_view>
#include <vector>

namespace kura::fhir {
namespace {

// Plain GoogleTest (the target does not link gmock), so small helpers stand in for matchers.
bool Contains(std::span<const std::string_view> values, std::string_view value) {
  return std::ranges::find(values, value) != values.end();
}

std::vector<std::string_view> ToVector(std::span<const std::string_view> values) {
  return {values.begin(), values.end()};
}

// R4 4.0.1 defines 146 concrete resource types (checked against the package: 146 non-abstract
// resource StructureDefinitions; CodeSystem/resource-types lists 148 codes including the abstract
// Resource and DomainResource). Summaries quoting 145 are off by one.
TEST(R4TablesTest, ResourceTypeCountMatchesSpec) { EXPECT_EQ(R4ResourceTypes().size(), 146u); }

TEST(R4TablesTest, ResourceTypesSortedAndUnique) {
  const auto types = R4ResourceTypes();
  EXPECT_TRUE(std::ranges::is_sorted(types));
  EXPECT_EQ(std::ranges::adjacent_find(types), types.end());
}

TEST(R4TablesTest, ResourceTypesIncludeNonDomainResources) {
  EXPECT_TRUE(Contains(R4ResourceTypes(), "Bundle"));
  EXPECT_TRUE(Contains(R4ResourceTypes(), "Parameters"));
  EXPECT_TRUE(Contains(R4ResourceTypes(), "Binary"));
}

TEST(R4TablesTest, IsR4ResourceType) {
  EXPECT_TRUE(IsR4ResourceType("Patient"));
  EXPECT_TRUE(IsR4ResourceType("Account"));             // First entry.
  EXPECT_TRUE(IsR4ResourceType("VisionPrescription"));  // Last entry.
  EXPECT_FALSE(IsR4ResourceType("Resource"));
  EXPECT_FALSE(IsR4ResourceType("DomainResource"));
  EXPECT_FALSE(IsR4ResourceType("patient"));
  EXPECT_FALSE(IsR4ResourceType("Foo"));
  EXPECT_FALSE(IsR4ResourceType(""));
  EXPECT_FALSE(IsR4ResourceType("Patient "));
}

TEST(R4TablesTest, EveryListedTypeIsFound) {
  for (std::string_view type : R4ResourceTypes()) EXPECT_TRUE(IsR4ResourceType(type)) << type;
}

TEST(R4TablesTest, PatientCompartmentObservation) {
  const auto paths = PatientCompartmentPaths("Observation");
  EXPECT_TRUE(Contains(paths, "subject"));
  EXPECT_TRUE(Contains(paths, "performer"));
  EXPECT_EQ(paths.size(), 2u);
}

TEST(R4TablesTest, PatientCompartmentSingleAndNestedPaths) {
  // Encounter's "patient" param is `Encounter.subject.where(resolve() is Patient)`.
  EXPECT_TRUE(Contains(PatientCompartmentPaths("Encounter"), "subject"));
  EXPECT_EQ(ToVector(PatientCompartmentPaths("Appointment")),
            std::vector<std::string_view>{"participant.actor"});
}

TEST(R4TablesTest, PatientCompartmentPatientItself) {
  EXPECT_EQ(ToVector(PatientCompartmentPaths("Patient")),
            std::vector<std::string_view>{"link.other"});
}

TEST(R4TablesTest, PatientCompartmentEmptyForOthers) {
  EXPECT_TRUE(PatientCompartmentPaths("Organization").empty());
  EXPECT_TRUE(PatientCompartmentPaths("Foo").empty());
  EXPECT_TRUE(PatientCompartmentPaths("observation").empty());
  EXPECT_TRUE(PatientCompartmentPaths("").empty());
}

TEST(R4TablesTest, PatientCompartmentPathsAreWellFormed) {
  int types_with_paths = 0;
  for (std::string_view type : R4ResourceTypes()) {
    const auto paths = PatientCompartmentPaths(type);
    if (paths.empty()) continue;
    ++types_with_paths;
    EXPECT_TRUE(std::ranges::is_sorted(paths)) << type;
    EXPECT_EQ(std::ranges::adjacent_find(paths), paths.end()) << type;
    for (std::string_view path : paths) {
      EXPECT_FALSE(path.empty()) << type;
      EXPECT_FALSE(path.starts_with(type)) << type << ": " << path;
      EXPECT_EQ(path.find_first_of("()| "), std::string_view::npos) << type << ": " << path;
    }
  }
  EXPECT_EQ(types_with_paths, 66);
}

}  // namespace
}  // namespace kura::fhir
