// Local key file: parsing, creation and AES-256-GCM key wrapping.
#include "kura/crypto/local_key_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "kura/base/random.h"

namespace kura::crypto {
namespace {
constexpr std::string_view kMagic = "kura-keyfile-v1";
constexpr uint8_t kWrapFormatV1 = 0x01;

std::string WrapAad(std::string_view associated_data) {
  std::string aad = "kura-wrap-v1:";
  aad += associated_data;
  return aad;
}
}  // namespace

Status CheckOwnerOnly(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return FailedPreconditionError("cannot stat " + path.string() + ": " + std::strerror(errno));
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", st.st_mode & 07777);
    return FailedPreconditionError(path.string() + " is accessible by group or others (mode " +
                                   mode + "); run: chmod go-rwx " + path.string());
  }
  return Status::Ok();
}

Status LocalKeyFileProvider::CreateKeyFile(const std::filesystem::path& path) {
  std::array<uint8_t, kAesKeyBytes> key;
  SystemRandomFill(key);
  std::string contents = std::string(kMagic) + "\nkek 1 " + Base64Encode(key) + "\n";
  SecureWipe(key.data(), key.size());
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    SecureWipe(contents.data(), contents.size());
    if (errno == EEXIST) return AlreadyExistsError("key file exists: " + path.string());
    return InternalError("cannot create key file " + path.string() + ": " + std::strerror(errno));
  }
  bool ok = ::write(fd, contents.data(), contents.size()) == static_cast<ssize_t>(contents.size());
  ok = ok && ::fsync(fd) == 0;
  ::close(fd);
  SecureWipe(contents.data(), contents.size());
  if (!ok) return InternalError("cannot write key file " + path.string());
  return Status::Ok();
}

StatusOr<std::unique_ptr<LocalKeyFileProvider>> LocalKeyFileProvider::Load(
    const std::filesystem::path& path) {
  KURA_RETURN_IF_ERROR(CheckOwnerOnly(path));
  std::ifstream in(path);
  if (!in) return FailedPreconditionError("cannot read key file " + path.string());
  std::unique_ptr<LocalKeyFileProvider> provider(new LocalKeyFileProvider());
  std::string line;
  if (!std::getline(in, line) || line != kMagic) {
    return DataLossError("key file " + path.string() + " is not a kura-keyfile-v1");
  }
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string tag, encoded;
    uint32_t version = 0;
    if (!(fields >> tag >> version >> encoded) || tag != "kek" || version == 0) {
      SecureWipe(line.data(), line.size());
      return DataLossError("key file " + path.string() + " has a malformed line");
    }
    std::string raw;
    bool decoded = Base64Decode(encoded, raw);
    SecureWipe(encoded.data(), encoded.size());
    SecureWipe(line.data(), line.size());
    if (!decoded || raw.size() != kAesKeyBytes) {
      SecureWipe(raw.data(), raw.size());
      return DataLossError("key file " + path.string() + " holds a malformed key");
    }
    auto secret = SecretBytes::CopyFrom({reinterpret_cast<const uint8_t*>(raw.data()), raw.size()});
    SecureWipe(raw.data(), raw.size());
    if (!secret.ok()) return secret.status();
    KURA_ASSIGN_OR_RETURN(AeadKey key, AeadKey::Create(version, std::move(*secret)));
    if (!provider->keks_.emplace(version, std::move(key)).second) {
      return DataLossError("key file " + path.string() + " repeats a KEK version");
    }
    provider->primary_ = std::max(provider->primary_, version);
  }
  if (provider->keks_.empty()) return DataLossError("key file " + path.string() + " holds no key");
  return provider;
}

StatusOr<std::string> LocalKeyFileProvider::WrapKey(const SecretBytes& data_key,
                                                    std::string_view associated_data) const {
  const AeadKey& kek = keks_.at(primary_);
  auto plain = data_key.ExposeSecretForCrypto();
  KURA_ASSIGN_OR_RETURN(
      std::string record,
      kek.Encrypt({reinterpret_cast<const char*>(plain.data()), plain.size()},
                  WrapAad(associated_data)));
  std::string out(5, '\0');
  out[0] = static_cast<char>(kWrapFormatV1);
  for (int i = 0; i < 4; ++i) out[1 + i] = static_cast<char>((primary_ >> (24 - 8 * i)) & 0xff);
  return out + record;
}

StatusOr<SecretBytes> LocalKeyFileProvider::UnwrapKey(std::string_view wrapped,
                                                      std::string_view associated_data) const {
  if (wrapped.size() < 5 || static_cast<uint8_t>(wrapped[0]) != kWrapFormatV1) {
    return DecryptionFailed("wrapped key malformed");
  }
  uint32_t version = 0;
  for (int i = 0; i < 4; ++i) version = (version << 8) | static_cast<uint8_t>(wrapped[1 + i]);
  auto it = keks_.find(version);
  if (it == keks_.end()) return DecryptionFailed("wrapped key names an unknown KEK version");
  KURA_ASSIGN_OR_RETURN(std::string plain,
                        it->second.Decrypt(wrapped.substr(5), WrapAad(associated_data)));
  auto secret = SecretBytes::CopyFrom({reinterpret_cast<const uint8_t*>(plain.data()), plain.size()});
  SecureWipe(plain.data(), plain.size());
  return secret;
}

}  // namespace kura::crypto
