// Fuzz target: the audit log's stored forms, which `kura audit verify`, the exporter and the
// audit API read back from a database an attacker may have edited. The input is taken both as a
// record's canonical encoding and as a signed checkpoint note. DecodeAuditRecord must refuse what
// EncodeAuditRecord cannot have produced, so whatever it accepts must encode to the same bytes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "kura/audit/note.h"
#include "kura/audit/record.h"
#include "property.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kura::audit;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  kura::StatusOr<AuditRecord> record = DecodeAuditRecord(bytes);
  if (record.ok()) {
    kura::StatusOr<std::string> encoded = EncodeAuditRecord(*record);
    if (!encoded.ok() || *encoded != bytes) {
      PropertyBroken("a decoded record does not encode to its bytes");
    }
    (void)AuditRecordToJson(*record).dump();
  }
  (void)ParseNote(bytes);
  (void)VerifyNote(bytes, {});
  return 0;
}
