/* smstext: SMS encoding and segment counting (see smstext.h).
 *
 * The text is decoded twice: once to learn whether every character fits
 * GSM-7 (which decides the encoding for the whole text), once to lay the
 * characters out into parts. Tables are const; nothing is allocated. */
#include "notifiers/smstext.h"

#include <errno.h>
#include <stdint.h>

#include "core/util.h"

/* GSM 03.38 default alphabet: index = GSM code, value = Unicode code point.
 * 0x1B is the escape to the extension table and maps to no character
 * (GSM_ESC_CODE, skipped by lookups; its 0xFFFF is only a placeholder). */
#define GSM_ESC_CODE 0x1B
static const uint16_t gsm_basic[128] = {
    0x0040, 0x00A3, 0x0024, 0x00A5, 0x00E8, 0x00E9, 0x00F9, 0x00EC, /* 0x00 @£$¥èéùì */
    0x00F2, 0x00C7, 0x000A, 0x00D8, 0x00F8, 0x000D, 0x00C5, 0x00E5, /* 0x08 òÇ\nØø\rÅå */
    0x0394, 0x005F, 0x03A6, 0x0393, 0x039B, 0x03A9, 0x03A0, 0x03A8, /* 0x10 Δ_ΦΓΛΩΠΨ */
    0x03A3, 0x0398, 0x039E, 0xFFFF, 0x00C6, 0x00E6, 0x00DF, 0x00C9, /* 0x18 ΣΘΞ ÆæßÉ */
    0x0020, 0x0021, 0x0022, 0x0023, 0x00A4, 0x0025, 0x0026, 0x0027, /* 0x20  !"#¤%&' */
    0x0028, 0x0029, 0x002A, 0x002B, 0x002C, 0x002D, 0x002E, 0x002F, /* 0x28 ()*+,-./ */
    0x0030, 0x0031, 0x0032, 0x0033, 0x0034, 0x0035, 0x0036, 0x0037, /* 0x30 01234567 */
    0x0038, 0x0039, 0x003A, 0x003B, 0x003C, 0x003D, 0x003E, 0x003F, /* 0x38 89:;<=>? */
    0x00A1, 0x0041, 0x0042, 0x0043, 0x0044, 0x0045, 0x0046, 0x0047, /* 0x40 ¡ABCDEFG */
    0x0048, 0x0049, 0x004A, 0x004B, 0x004C, 0x004D, 0x004E, 0x004F, /* 0x48 HIJKLMNO */
    0x0050, 0x0051, 0x0052, 0x0053, 0x0054, 0x0055, 0x0056, 0x0057, /* 0x50 PQRSTUVW */
    0x0058, 0x0059, 0x005A, 0x00C4, 0x00D6, 0x00D1, 0x00DC, 0x00A7, /* 0x58 XYZÄÖÑÜ§ */
    0x00BF, 0x0061, 0x0062, 0x0063, 0x0064, 0x0065, 0x0066, 0x0067, /* 0x60 ¿abcdefg */
    0x0068, 0x0069, 0x006A, 0x006B, 0x006C, 0x006D, 0x006E, 0x006F, /* 0x68 hijklmno */
    0x0070, 0x0071, 0x0072, 0x0073, 0x0074, 0x0075, 0x0076, 0x0077, /* 0x70 pqrstuvw */
    0x0078, 0x0079, 0x007A, 0x00E4, 0x00F6, 0x00F1, 0x00FC, 0x00E0, /* 0x78 xyzäöñüà */
};

/* Extension table characters (escape + code): form feed ^ { } \ [ ~ ] | €. */
static const uint16_t gsm_ext[] = {0x000C, 0x005E, 0x007B, 0x007D, 0x005C,
                                   0x005B, 0x007E, 0x005D, 0x007C, 0x20AC};

/* Septets cp takes in GSM-7: 1, 2 (extension table) or 0 (not encodable). */
static unsigned gsm_septets(uint32_t cp) {
  if (cp >= 0x20 && cp < 0x7F) /* fast path: ASCII is all basic except these */
    return cp == '`' ? 0 : strchr("^{}\\[~]|", (int)cp) ? 2 : 1;
  for (size_t i = 0; i < ELEMENTSOF(gsm_basic); i++)
    if (gsm_basic[i] == cp && i != GSM_ESC_CODE)
      return 1;
  for (size_t i = 0; i < ELEMENTSOF(gsm_ext); i++)
    if (gsm_ext[i] == cp)
      return 2;
  return 0;
}

/* Decodes one code point at *p (not at the NUL) and advances *p.
 * Returns 0 or -EINVAL. */
static int utf8_next(const unsigned char **p, uint32_t *ret) {
  const unsigned char *s = *p;
  uint32_t cp;
  size_t n;
  if (s[0] < 0x80) {
    *ret = s[0];
    *p = s + 1;
    return 0;
  } else if ((s[0] & 0xE0) == 0xC0) {
    cp = s[0] & 0x1F;
    n = 2;
  } else if ((s[0] & 0xF0) == 0xE0) {
    cp = s[0] & 0x0F;
    n = 3;
  } else if ((s[0] & 0xF8) == 0xF0) {
    cp = s[0] & 0x07;
    n = 4;
  } else
    return -EINVAL;
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xC0) != 0x80) /* also stops at the NUL */
      return -EINVAL;
    cp = cp << 6 | (s[i] & 0x3F);
  }
  static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return -EINVAL;
  *ret = cp;
  *p = s + n;
  return 0;
}

int smstext_segments(const char *utf8, struct smstext_info *ret) {
  if (!utf8 || !ret)
    return -EINVAL;

  bool gsm = true;
  size_t chars = 0;
  for (const unsigned char *p = (const unsigned char *)utf8; *p;) {
    uint32_t cp;
    int r = utf8_next(&p, &cp);
    if (r < 0)
      return r;
    chars++;
    if (gsm && gsm_septets(cp) == 0)
      gsm = false;
  }

  /* Lay the characters out: total units, and parts of part_cap units each
   * where a 2-unit character never straddles two parts. */
  size_t part_cap = gsm ? SMSTEXT_GSM7_PART : SMSTEXT_UCS2_PART;
  size_t units = 0, parts = 0, used = part_cap;
  for (const unsigned char *p = (const unsigned char *)utf8; *p;) {
    uint32_t cp;
    (void)utf8_next(&p, &cp);
    size_t w = gsm ? gsm_septets(cp) : (cp > 0xFFFF ? 2 : 1);
    units += w;
    if (used + w > part_cap) {
      parts++;
      used = 0;
    }
    used += w;
  }
  size_t single = gsm ? SMSTEXT_GSM7_SINGLE : SMSTEXT_UCS2_SINGLE;

  *ret = (struct smstext_info){
      .encoding = gsm ? SMSTEXT_GSM7 : SMSTEXT_UCS2,
      .chars = chars,
      .units = units,
      .segments = units == 0        ? 0
                  : units <= single ? 1
                                    : parts,
  };
  return 0;
}

const char *smstext_encoding_to_string(enum smstext_encoding e) {
  switch (e) {
  case SMSTEXT_GSM7:
    return "GSM-7";
  case SMSTEXT_UCS2:
    return "UCS-2";
  }
  return NULL;
}

bool smstext_is_e164(const char *s) {
  if (!s || s[0] != '+' || s[1] < '1' || s[1] > '9')
    return false;
  size_t n = strspn(s + 1, "0123456789");
  return s[1 + n] == 0 && n >= 8 && n <= 15;
}
