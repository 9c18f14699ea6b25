"""Binary BCH codes: the error correction of the invisible watermark (`kaiga.provenance.watermark`).

A BCH code of length n = 2^m - 1 corrects up to t flipped bits of a codeword. The watermark carries
BCH(63, 36, t=5): 36 data bits (the payload and a version) in 63 bits, any 5 of which may be misread.

Hand-written because the libraries that do this do not fit: `bchlib` wraps the Linux kernel's code
under the GPL-2.0 (kaiga is Apache-2.0), and `galois` (MIT) compiles with numba on first use (~15 s
before the first decode here), which a CLI that verifies one image cannot afford. The code is the
textbook construction: the generator polynomial is the product of the minimal polynomials of
α, α^3, …, α^(2t-1) over GF(2^m); encoding is systematic (data bits, then the remainder of their
division by the generator); decoding computes syndromes, finds the error locator with
Berlekamp-Massey, and its roots with a Chien search.

Example:
    >>> code = BCH(m=6, t=5)
    >>> code.n, code.k
    (63, 36)
    >>> data = [1, 0, 1, 1] * 9
    >>> word = code.encode(data)
    >>> for i in (0, 7, 20, 41, 62):
    ...     word[i] ^= 1
    >>> fixed, errors = code.decode(word)
    >>> fixed == data, errors
    (True, 5)
"""

from __future__ import annotations

from functools import reduce

# Primitive polynomials of GF(2^m), as bit masks (x^6 + x + 1 is 0b1000011).
PRIMITIVE = {4: 0b10011, 5: 0b100101, 6: 0b1000011, 7: 0b10001001, 8: 0b100011101}


class Field:
    """GF(2^m) with exponent and log tables."""

    def __init__(self, m: int):
        if m not in PRIMITIVE:
            raise ValueError(f"m: one of {sorted(PRIMITIVE)}, not {m}")
        self.m, self.size = m, (1 << m) - 1
        self.exp = [0] * (2 * self.size)
        self.log = [0] * (self.size + 1)
        value = 1
        for i in range(self.size):
            self.exp[i] = self.exp[i + self.size] = value
            self.log[value] = i
            value <<= 1
            if value >> m:
                value ^= PRIMITIVE[m]

    def mul(self, a: int, b: int) -> int:
        return 0 if a == 0 or b == 0 else self.exp[self.log[a] + self.log[b]]

    def div(self, a: int, b: int) -> int:
        return 0 if a == 0 else self.exp[(self.log[a] - self.log[b]) % self.size]

    def power(self, i: int) -> int:
        """α^i."""
        return self.exp[i % self.size]


def _poly_mul_gf2(a: int, b: int) -> int:
    """Product of two polynomials over GF(2), as bit masks (bit i: the coefficient of x^i)."""
    out = 0
    while b:
        if b & 1:
            out ^= a
        a, b = a << 1, b >> 1
    return out


def _minimal_polynomial(field: Field, i: int) -> int:
    """The minimal polynomial over GF(2) of α^i: the product of (x - α^j) over i's cyclotomic coset."""
    coset, j = [], i % field.size
    while j not in coset:
        coset.append(j)
        j = (2 * j) % field.size
    poly = [1]  # coefficients in GF(2^m), lowest first
    for j in coset:  # multiply by (x + α^j)
        root = field.power(j)
        poly = [a ^ b for a, b in zip([field.mul(c, root) for c in poly] + [0], [0] + poly)]
    # the coefficients are 0 or 1 once every conjugate root is in
    return sum(c << d for d, c in enumerate(poly))


class BCH:
    """A narrow-sense binary BCH code of length 2^m - 1 that corrects `t` bit errors."""

    def __init__(self, m: int = 6, t: int = 5):
        self.field = Field(m)
        self.t = t
        self.n = self.field.size
        factors = {_minimal_polynomial(self.field, i) for i in range(1, 2 * t, 2)}
        self.generator = reduce(_poly_mul_gf2, sorted(factors), 1)
        self.parity = self.generator.bit_length() - 1
        self.k = self.n - self.parity
        if self.k <= 0:
            raise ValueError(f"t: a BCH code of length {self.n} cannot correct {t} errors")

    def encode(self, data: list[int]) -> list[int]:
        """The codeword of `k` data bits: the data bits, then `n - k` parity bits."""
        if len(data) != self.k or any(b not in (0, 1) for b in data):
            raise ValueError(f"data: {self.k} bits of 0 or 1")
        message = sum(b << (self.n - 1 - i) for i, b in enumerate(data))  # data in the high powers
        remainder = message
        for shift in range(self.n - 1, self.parity - 1, -1):
            if remainder >> shift & 1:
                remainder ^= self.generator << (shift - self.parity)
        word = message | remainder
        return [word >> (self.n - 1 - i) & 1 for i in range(self.n)]

    def decode(self, word: list[int]) -> tuple[list[int] | None, int]:
        """(the data bits, how many bits were corrected), or (None, -1) when more than `t` bits are wrong
        and no codeword is within reach."""
        if len(word) != self.n:
            raise ValueError(f"word: {self.n} bits")
        f = self.field
        # bit i of the list is the coefficient of x^(n-1-i)
        positions = [self.n - 1 - i for i, b in enumerate(word) if b]
        syndromes = [reduce(lambda acc, p: acc ^ f.power(j * p), positions, 0) for j in range(1, 2 * self.t + 1)]
        if not any(syndromes):
            return list(word[: self.k]), 0
        locator = self._berlekamp_massey(syndromes)
        degree = len(locator) - 1
        if degree > self.t:
            return None, -1
        # Chien search: x^p is in error where Λ(α^-p) = 0
        errors = [p for p in range(self.n) if self._evaluate(locator, f.power(-p)) == 0]
        if len(errors) != degree:
            return None, -1
        fixed = list(word)
        for p in errors:
            fixed[self.n - 1 - p] ^= 1
        return fixed[: self.k], degree

    def _evaluate(self, poly: list[int], x: int) -> int:
        out = 0
        for c in reversed(poly):
            out = self.field.mul(out, x) ^ c
        return out

    def _berlekamp_massey(self, s: list[int]) -> list[int]:
        """The shortest error-locator polynomial Λ (lowest coefficient first, Λ0 = 1) of the syndromes."""
        f = self.field
        locator, previous = [1], [1]
        length, shift, last_discrepancy = 0, 1, 1
        for i in range(len(s)):
            d = s[i]
            for j in range(1, length + 1):
                if j < len(locator):
                    d ^= f.mul(locator[j], s[i - j])
            if d == 0:
                shift += 1
                continue
            scale = f.div(d, last_discrepancy)
            update = [0] * shift + [f.mul(scale, c) for c in previous]
            new = [a ^ b for a, b in zip(locator + [0] * (len(update) - len(locator)),
                                         update + [0] * (len(locator) - len(update)))]
            if 2 * length <= i:
                previous, length, last_discrepancy, shift = locator, i + 1 - length, d, 1
            else:
                shift += 1
            locator = new
        while len(locator) > 1 and locator[-1] == 0:
            locator.pop()
        return locator
