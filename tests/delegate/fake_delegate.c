/* A minimal TFLite external delegate for tests: it loads through the same path as libedgetpu.so.1
 * (tflite_plugin_create_delegate / tflite_plugin_destroy_delegate) and claims no nodes, so the model
 * runs on the builtin CPU kernels.
 *
 * The struct below reproduces the layout of TfLiteDelegate in tensorflow/lite/core/c/common.h
 * (fields in order: data_, Prepare, CopyFromBufferHandle, CopyToBufferHandle, FreeBufferHandle,
 * flags, opaque_delegate_builder). Only Prepare is called; it returns kTfLiteOk (0) without calling
 * ReplaceNodeSubsetsWithDelegateKernels, which is how a delegate says "none of these nodes are mine".
 *
 * Behaviour switches, so one source gives every library the tests need:
 *   -DFAKE_CRASH_ON_CREATE  create dereferences a null pointer (a libedgetpu built for another TFLite)
 *   option "fail"=MESSAGE   create reports MESSAGE and returns NULL (like libedgetpu without a device)
 *   env FAKE_DELEGATE_LOG   create appends "key=value" lines of the options it was given to that file
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int FakeStatus; /* TfLiteStatus: kTfLiteOk = 0 */

typedef struct FakeDelegate {
  void *data_;
  FakeStatus (*Prepare)(void *context, struct FakeDelegate *delegate);
  FakeStatus (*CopyFromBufferHandle)(void *context, struct FakeDelegate *delegate, int buffer_handle,
                                     void *tensor);
  FakeStatus (*CopyToBufferHandle)(void *context, struct FakeDelegate *delegate, int buffer_handle,
                                   void *tensor);
  void (*FreeBufferHandle)(void *context, struct FakeDelegate *delegate, int *handle);
  int64_t flags;
  void *opaque_delegate_builder;
} FakeDelegate;

static FakeStatus claim_nothing(void *context, FakeDelegate *delegate) {
  (void)context;
  (void)delegate;
  return 0;
}

FakeDelegate *tflite_plugin_create_delegate(char **keys, char **values, size_t count,
                                            void (*report_error)(const char *)) {
#ifdef FAKE_CRASH_ON_CREATE
  volatile int *nowhere = NULL;
  *nowhere = 1;
#endif
  const char *log_path = getenv("FAKE_DELEGATE_LOG");
  FILE *log = log_path ? fopen(log_path, "a") : NULL;
  for (size_t i = 0; i < count; i++) {
    if (log) fprintf(log, "%s=%s\n", keys[i], values[i]);
    if (strcmp(keys[i], "fail") == 0) {
      if (log) fclose(log);
      if (report_error) report_error(values[i]);
      return NULL;
    }
  }
  if (log) {
    fprintf(log, "created\n");
    fclose(log);
  }
  FakeDelegate *delegate = calloc(1, sizeof(FakeDelegate));
  if (delegate == NULL) return NULL;
  delegate->Prepare = claim_nothing;
  return delegate;
}

void tflite_plugin_destroy_delegate(FakeDelegate *delegate) { free(delegate); }
