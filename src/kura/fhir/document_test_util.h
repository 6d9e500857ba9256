// Test helper: two readings of a resource body agree member by member (key, compact text and
// string value), in meta and in the patient references they found.
#pragma once

#include <gtest/gtest.h>

#include <vector>

#include "kura/fhir/json.h"

namespace kura::fhir {

inline void ExpectSameMembers(const std::vector<JsonMember>& a, const std::vector<JsonMember>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].key, b[i].key);
    EXPECT_EQ(a[i].json, b[i].json) << a[i].key;
    EXPECT_EQ(a[i].string_value, b[i].string_value) << a[i].key;
  }
}

inline void ExpectSameDocument(const ResourceDocument& a, const ResourceDocument& b) {
  ExpectSameMembers(a.members, b.members);
  ASSERT_EQ(a.meta.has_value(), b.meta.has_value());
  if (a.meta) ExpectSameMembers(*a.meta, *b.meta);
  EXPECT_EQ(a.patient_references, b.patient_references);
}

}  // namespace kura::fhir
