// Thread names through pthread_setname_np (Linux keeps 15 characters plus the terminator).
#include "kura/base/thread_name.h"

#include <pthread.h>

#include <cstring>

namespace kura {

void NameThisThread(const char* name) {
  char cut[16] = {};
  std::strncpy(cut, name, sizeof(cut) - 1);
  pthread_setname_np(pthread_self(), cut);
}

}  // namespace kura
