#ifndef MPITRAIN_WIRE_H
#define MPITRAIN_WIRE_H
/* Floats on a slow wire (DiLoCo's pseudo-gradients, over MPI in
 * comm/mpi/paced.c and over the fabric in worker/method/elastic/): f32, or
 * bf16 (round to nearest even), int8 or int4 (block-wise absmax codes,
 * base/quant.h) with error feedback: what the format drops from a value is
 * added to the same element the next time (Seide et al. 2014; Karimireddy
 * et al. 2019), so over many rounds nothing is lost, only late. */
#include <stddef.h>

typedef enum { WIRE_F32 = 0, WIRE_BF16 = 1, WIRE_INT8 = 2, WIRE_INT4 = 3 } WireFormat;

/* --diloco-wire's name of a format ("fp32", "bf16", "int8", "int4"). */
const char *wire_name(int w);
/* Bytes of len values (one run: the quantized formats' blocks start at its
 * first value). */
size_t wire_bytes(WireFormat w, size_t len);
/* v[0..len) (plus err[i], when err) onto the wire at out; v becomes what
 * the receiver will decode, err what the format dropped. x: len floats of
 * scratch. */
void wire_encode(WireFormat w, float *v, size_t len, unsigned char *out, float *err, float *x);
/* len values from in (as wire_encode wrote them) into out. */
void wire_decode(WireFormat w, const unsigned char *in, size_t len, float *out);

#endif
