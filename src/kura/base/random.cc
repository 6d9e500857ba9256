// CSPRNG-backed identifiers and encodings via libsodium.
#include "kura/base/random.h"

#include <pthread.h>
#include <sodium.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>

#include "kura/base/secret_bytes.h"

namespace kura {
namespace {

// Bumped in every forked child, so a child never repeats what its parent's threads draw next.
std::atomic<uint64_t> fork_generation{0};

void EnsureSodiumAndForkHook() {
  static const bool ready = [] {
    const bool sodium = sodium_init() >= 0;
    pthread_atfork(nullptr, nullptr,
                   [] { fork_generation.fetch_add(1, std::memory_order_relaxed); });
    return sodium;
  }();
  (void)ready;
}

class ThreadGenerator {
 public:
  ThreadGenerator() = default;
  ThreadGenerator(const ThreadGenerator&) = delete;
  ThreadGenerator& operator=(const ThreadGenerator&) = delete;
  ~ThreadGenerator() { Wipe(); }

  void Fill(std::span<uint8_t> out) {
    const uint64_t generation = fork_generation.load(std::memory_order_relaxed);
    if (generation != generation_ || drawn_since_seed_ >= kReseedAfterBytes) {
      Reseed(generation);
    }
    drawn_since_seed_ += out.size();
    while (!out.empty()) {
      if (next_ == block_.size()) Refill();
      const size_t n = std::min(out.size(), block_.size() - next_);
      std::memcpy(out.data(), block_.data() + next_, n);
      sodium_memzero(block_.data() + next_, n);
      next_ += n;
      out = out.subspan(n);
    }
  }

  uint64_t reseeds() const { return reseeds_; }

 private:
  static constexpr size_t kReseedAfterBytes = size_t{1} << 20;

  void Reseed(uint64_t generation) {
    Wipe();
    randombytes_buf(key_.data(), key_.size());
    generation_ = generation;
    drawn_since_seed_ = 0;
    ++reseeds_;
  }

  void Refill() {
    randombytes_buf_deterministic(block_.data(), block_.size(), key_.data());
    std::memcpy(key_.data(), block_.data(), key_.size());
    sodium_memzero(block_.data(), key_.size());
    next_ = key_.size();
  }

  void Wipe() {
    sodium_memzero(key_.data(), key_.size());
    sodium_memzero(block_.data(), block_.size());
    next_ = block_.size();
  }

  std::array<uint8_t, randombytes_SEEDBYTES> key_{};
  std::array<uint8_t, 512> block_{};
  size_t next_ = block_.size();
  uint64_t generation_ = 0;
  uint64_t drawn_since_seed_ = kReseedAfterBytes;  // Not keyed yet: the first Fill keys it.
  uint64_t reseeds_ = 0;
};

ThreadGenerator& ThisThreadsGenerator() {
  thread_local ThreadGenerator generator;
  return generator;
}

}  // namespace

void RandomFill(std::span<uint8_t> out) {
  EnsureSodiumAndForkHook();
  ThisThreadsGenerator().Fill(out);
}

void SystemRandomFill(std::span<uint8_t> out) {
  EnsureSodiumAndForkHook();
  randombytes_buf(out.data(), out.size());
}

uint64_t RandomGeneratorReseedsOnThisThread() { return ThisThreadsGenerator().reseeds(); }

uint64_t RandomNonZeroUint64() {
  uint64_t value = 0;
  while (value == 0) {
    uint8_t bytes[8];
    RandomFill(bytes);
    for (uint8_t b : bytes) value = (value << 8) | b;
  }
  return value;
}

namespace {

std::string FormatUuid(const std::array<uint8_t, 16>& b) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (size_t i = 0; i < b.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[b[i] >> 4]);
    out.push_back(kHex[b[i] & 0xf]);
  }
  return out;
}

}  // namespace

std::string RandomUuid() {
  std::array<uint8_t, 16> b;
  RandomFill(b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  return FormatUuid(b);
}

std::string TimeOrderedUuid(TimePoint now) {
  std::array<uint8_t, 16> b;
  RandomFill(b);
  const uint64_t ms = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count());
  for (int i = 0; i < 6; ++i) b[static_cast<size_t>(i)] = static_cast<uint8_t>(ms >> (40 - 8 * i));
  b[6] = (b[6] & 0x0f) | 0x70;
  b[8] = (b[8] & 0x3f) | 0x80;
  return FormatUuid(b);
}

std::string HexEncode(std::span<const uint8_t> bytes) {
  std::string out(bytes.size() * 2 + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), bytes.data(), bytes.size());
  out.pop_back();
  return out;
}

namespace {
std::string Base64With(std::span<const uint8_t> bytes, int variant) {
  std::string out(sodium_base64_encoded_len(bytes.size(), variant), '\0');
  sodium_bin2base64(out.data(), out.size(), bytes.data(), bytes.size(), variant);
  out.resize(std::char_traits<char>::length(out.c_str()));
  return out;
}
}  // namespace

std::string Base64UrlEncode(std::span<const uint8_t> bytes) {
  return Base64With(bytes, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}
std::string Base64Encode(std::span<const uint8_t> bytes) {
  return Base64With(bytes, sodium_base64_VARIANT_ORIGINAL);
}

bool Base64Decode(std::string_view text, std::string& out) {
  out.assign(text.size(), '\0');
  size_t len = 0;
  const char* end = nullptr;
  int variant = (!text.empty() && text.back() == '=') ? sodium_base64_VARIANT_ORIGINAL
                                                      : sodium_base64_VARIANT_ORIGINAL_NO_PADDING;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(),
                        text.size(), nullptr, &len, &end, variant) != 0 ||
      end != text.data() + text.size()) {
    return false;
  }
  out.resize(len);
  return true;
}

bool Base64DecodeCanonical(std::string_view text, std::string& out) {
  if (!Base64Decode(text, out)) return false;
  return Base64Encode({reinterpret_cast<const uint8_t*>(out.data()), out.size()}) == text;
}

std::string RandomToken(size_t bytes) {
  std::string raw(bytes, '\0');
  RandomFill({reinterpret_cast<uint8_t*>(raw.data()), raw.size()});
  std::string out = Base64UrlEncode({reinterpret_cast<const uint8_t*>(raw.data()), raw.size()});
  SecureWipe(raw.data(), raw.size());
  return out;
}

}  // namespace kura
