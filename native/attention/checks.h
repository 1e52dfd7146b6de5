// Host-side checks shared by the attention entry points (sdpa.cu's general path, flash.cu's fast
// kernels): the sizes and strides of a call, each tensor's extent, output rows that never overlap,
// and outputs that never meet an input. Every failure is a typed error naming the argument.
#pragma once
#include "attention/flash_params.h"
#include "common/launch.h"

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>

namespace dw {
namespace attention {

// Element strides of one tensor's rows (d is contiguous).
using RowStrides = Stride3;  // flash_params.h: one description of a tensor's row strides

struct Dims {
  int64_t B, H, Hkv, Sq, Sk, D;
  bool causal;
  float scale;
  RowStrides qs, ks, os;  // q and dq; k, v, dk and dv; out and dout
  uint64_t qx, kx, ox;    // the extents of those tensors in elements (largest offset + 1; 0 if empty)
  uint64_t qRows, kRows;  // B·H·Sq query rows and B·Hkv·Sk key rows
};

// a + b elements, failing instead of passing 2^53 - 1 (mulSize's partner).
inline uint64_t addSize(Napi::Env env, uint64_t a, uint64_t b, const char* what) {
  if (b > static_cast<uint64_t>(kMaxSafeInt) - a)
    fail(env, "INVALID_ARGUMENT", std::string("Expected at most 2^53 - 1 elements for ") + what + " but received " + std::to_string(a) + " + " + std::to_string(b));
  return a + b;
}

// The extent of a strided [B, heads, S, D] tensor in elements: its largest element offset + 1,
// (B-1)·sb + (heads-1)·sh + (S-1)·ss + D, or 0 when it has no rows; computed without overflow.
inline uint64_t extentOf(Napi::Env env, uint64_t B, uint64_t heads, uint64_t S, uint64_t D, uint64_t sb, uint64_t sh, uint64_t ss, const std::string& what) {
  if (B == 0 || heads == 0 || S == 0) return 0;
  uint64_t e = D;
  e = addSize(env, e, mulSize(env, B - 1, sb, what.c_str()), what.c_str());
  e = addSize(env, e, mulSize(env, heads - 1, sh, what.c_str()), what.c_str());
  return addSize(env, e, mulSize(env, S - 1, ss, what.c_str()), what.c_str());
}

// Rows of an output that never share an element, so no two warps write one: taken from the smallest
// stride up, each dimension of more than one row steps at least over the span of those inside it
// (sufficient, and true of every dense layout and of the heads of a packed QKV buffer).
inline void checkRowsDisjoint(Napi::Env env, uint64_t D, uint64_t B, uint64_t heads, uint64_t S, uint64_t sb, uint64_t sh, uint64_t ss, const char* name, const char* fn) {
  uint64_t dim[3][2] = {{B, sb}, {heads, sh}, {S, ss}};
  for (int i = 0; i < 3; ++i)
    for (int j = i + 1; j < 3; ++j)
      if (dim[j][1] < dim[i][1]) std::swap(dim[i], dim[j]);
  uint64_t span = D;  // every span here is at most the checked extent, < 2^53
  for (auto& d : dim) {
    if (d[0] < 2) continue;
    if (d[1] < span)
      fail(env, "INVALID_ARGUMENT", std::string("Expected strides for ") + name + " of " + fn + " whose rows do not overlap but received a stride of " + std::to_string(d[1]) +
                                        " elements over rows spanning " + std::to_string(span));
    span = (d[0] - 1) * d[1] + span;
  }
}

// Two byte ranges that share a byte (strict: unlike launch.h's badOverlap, the very same range is an
// overlap too, since no output of attention may be computed in place).
inline bool overlaps(const void* a, uint64_t ab, const void* b, uint64_t bb) {
  const uintptr_t a0 = reinterpret_cast<uintptr_t>(a), b0 = reinterpret_cast<uintptr_t>(b);
  return ab != 0 && bb != 0 && a0 < b0 + bb && b0 < a0 + ab;
}

// A device range of a call: a tensor's pointer and the bytes its extent spans.
struct Span {
  const void* p;
  uint64_t bytes;
  const char* name;
};

// Fails when an output's range meets an input's.
inline void checkNoOverlap(Napi::Env env, const Span& out, std::initializer_list<Span> ins, const char* fn) {
  for (const Span& in : ins)
    if (overlaps(out.p, out.bytes, in.p, in.bytes))
      fail(env, "INVALID_ARGUMENT", std::string("Expected ") + out.name + " of " + fn + " not to overlap the input " + in.name + " but received overlapping device ranges");
}

// The sizes of a call, checked: heads a multiple of kv heads, a head dimension, grid dimensions in
// range.
inline void checkSizes(Napi::Env env, uint64_t B, uint64_t H, uint64_t Hkv, uint64_t Sq, uint64_t Sk, uint64_t D, const char* fn) {
  if (Hkv == 0 || H % Hkv != 0)
    fail(env, "SHAPE_MISMATCH", std::string("Expected H (") + std::to_string(H) + ") to be a multiple of Hkv (" + std::to_string(Hkv) + ") for " + fn);
  if (D == 0) fail(env, "INVALID_ARGUMENT", std::string("Expected a head dimension of at least 1 for ") + fn);
  if (Sq > 2147483647u || Sk > 2147483647u || H > 65535 || B > 65535)
    fail(env, "INVALID_ARGUMENT", std::string("Expected Sq, Sk < 2^31 and H, B <= 65535 for ") + fn);
}

// The sizes and strides of a call, checked: the sizes (checkSizes), a finite scale, each tensor's
// extent within 2^53 - 1 elements, output rows that do not overlap.
template <typename A>
Dims dimsOf(Napi::Env env, const A& a, const char* fn, bool backward) {
  Dims n{static_cast<int64_t>(a.B), static_cast<int64_t>(a.H), static_cast<int64_t>(a.Hkv), static_cast<int64_t>(a.Sq), static_cast<int64_t>(a.Sk), static_cast<int64_t>(a.D),
         a.causal, static_cast<float>(a.scale),
         {static_cast<int64_t>(a.qsb), static_cast<int64_t>(a.qsh), static_cast<int64_t>(a.qss)},
         {static_cast<int64_t>(a.ksb), static_cast<int64_t>(a.ksh), static_cast<int64_t>(a.kss)},
         {static_cast<int64_t>(a.osb), static_cast<int64_t>(a.osh), static_cast<int64_t>(a.oss)}, 0, 0, 0, 0, 0};
  checkSizes(env, a.B, a.H, a.Hkv, a.Sq, a.Sk, a.D, fn);
  if (!(std::isfinite(a.scale))) fail(env, "INVALID_ARGUMENT", std::string("Expected a finite scale for ") + fn);
  const std::string f(fn);
  n.qx = extentOf(env, a.B, a.H, a.Sq, a.D, a.qsb, a.qsh, a.qss, f + " q (qsb, qsh, qss)");
  n.kx = extentOf(env, a.B, a.Hkv, a.Sk, a.D, a.ksb, a.ksh, a.kss, f + " k and v (ksb, ksh, kss)");
  n.ox = extentOf(env, a.B, a.H, a.Sq, a.D, a.osb, a.osh, a.oss, f + " out (osb, osh, oss)");
  n.qRows = mulSize(env, a.B * a.H, a.Sq, fn);
  n.kRows = mulSize(env, a.B * a.Hkv, a.Sk, fn);
  checkRowsDisjoint(env, a.D, a.B, a.H, a.Sq, a.osb, a.osh, a.oss, "out (osb, osh, oss)", fn);
  if (backward) {
    checkRowsDisjoint(env, a.D, a.B, a.H, a.Sq, a.qsb, a.qsh, a.qss, "dq (qsb, qsh, qss)", fn);
    checkRowsDisjoint(env, a.D, a.B, a.Hkv, a.Sk, a.ksb, a.ksh, a.kss, "dk and dv (ksb, ksh, kss)", fn);
  }
  return n;
}

// The tensors of a forward call, each checked against its allocation (its extent), and the outputs
// checked not to meet an input.
template <typename T>
struct FwdTensors {
  const T* q;
  const T* k;
  const T* v;
  T* out;
  float* lse;
};

template <typename T, typename A>
FwdTensors<T> forwardTensors(Napi::Env env, const A& a, const Dims& n, const char* fn) {
  FwdTensors<T> t{a.q.template ptr<T>(env, n.qx), a.k.template ptr<T>(env, n.kx), a.v.template ptr<T>(env, n.kx), a.out.template ptr<T>(env, n.ox),
                  a.lse.template ptr<float>(env, n.qRows)};
  const Span sq{t.q, n.qx * sizeof(T), "q"}, sk{t.k, n.kx * sizeof(T), "k"}, sv{t.v, n.kx * sizeof(T), "v"}, so{t.out, n.ox * sizeof(T), "out"};
  checkNoOverlap(env, so, {sq, sk, sv}, fn);
  checkNoOverlap(env, {t.lse, n.qRows * sizeof(float), "lse"}, {sq, sk, sv, so}, fn);
  return t;
}

// The same for a backward call.
template <typename T>
struct BwdTensors {
  const T* dout;
  const T* q;
  const T* k;
  const T* v;
  const T* out;
  const float* lse;
  T* dq;
  T* dk;
  T* dv;
};

template <typename T, typename A>
BwdTensors<T> backwardTensors(Napi::Env env, const A& a, const Dims& n, const char* fn) {
  BwdTensors<T> t{a.dout.template ptr<T>(env, n.ox), a.q.template ptr<T>(env, n.qx),  a.k.template ptr<T>(env, n.kx),
                  a.v.template ptr<T>(env, n.kx),    a.out.template ptr<T>(env, n.ox), a.lse.template ptr<float>(env, n.qRows),
                  a.dq.template ptr<T>(env, n.qx),   a.dk.template ptr<T>(env, n.kx),  a.dv.template ptr<T>(env, n.kx)};
  const std::initializer_list<Span> ins = {{t.dout, n.ox * sizeof(T), "dout"}, {t.q, n.qx * sizeof(T), "q"},     {t.k, n.kx * sizeof(T), "k"},
                                           {t.v, n.kx * sizeof(T), "v"},       {t.out, n.ox * sizeof(T), "out"}, {t.lse, n.qRows * sizeof(float), "lse"}};
  checkNoOverlap(env, {t.dq, n.qx * sizeof(T), "dq"}, ins, fn);
  checkNoOverlap(env, {t.dk, n.kx * sizeof(T), "dk"}, ins, fn);
  checkNoOverlap(env, {t.dv, n.kx * sizeof(T), "dv"}, ins, fn);
  return t;
}

}  // namespace attention
}  // namespace dw
