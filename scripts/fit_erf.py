#!/usr/bin/env python3
"""Fits the rational approximation of erf in crates/emotrack-nn/src/rows.rs (`erf`).

    python scripts/fit_erf.py        # needs NumPy (e.g. bench/peers/venv.sh's venv)

erf(x) = x * P(x^2) / Q(x^2) on [-4, 4] (erf is odd, and 1 within 2e-8 beyond 4), P of
degree 6, Q of degree 4 with Q(0) = 1. The coefficients solve the linearised problem
x * (y Q(t) - P(t)) = 0, y = erf(x)/x, t = x^2, by least squares, reweighted by 1/|Q| from the
previous solution until it settles (Sanathanan-Koerner iteration), so the residual weighed is
the error in erf itself. Prints the coefficients (9 significant digits) and the largest error
against math.erf of the float32 evaluation over [-8, 8].
"""

import math

import numpy as np

P_DEGREE, Q_DEGREE = 6, 4

x = np.linspace(1e-4, 4.0, 40_000)
t = x * x
erf = np.array([math.erf(v) for v in x])
y = erf / x
weight = np.ones_like(t)
for _ in range(30):
    a = np.hstack([
        np.vstack([t**k for k in range(P_DEGREE + 1)]).T,
        -np.vstack([y * t**k for k in range(1, Q_DEGREE + 1)]).T,
    ])
    w = (weight * x)[:, None]
    sol, *_ = np.linalg.lstsq(a * w, y * w[:, 0], rcond=None)
    p, q = sol[: P_DEGREE + 1], np.concatenate([[1.0], sol[P_DEGREE + 1 :]])
    weight = 1.0 / np.abs(sum(q[k] * t**k for k in range(Q_DEGREE + 1)))
p = [float(f"{v:.9e}") for v in p]
q = [float(f"{v:.9e}") for v in q]
print("P =", p)
print("Q =", q)

xs = np.linspace(-8, 8, 400_001).astype(np.float32)
xc = np.clip(xs, np.float32(-4), np.float32(4))
t32 = xc * xc
num, den = np.float32(p[-1]), np.float32(q[-1])
for c in p[-2::-1]:
    num = (num * t32 + np.float32(c)).astype(np.float32)
for c in q[-2::-1]:
    den = (den * t32 + np.float32(c)).astype(np.float32)
approx = np.clip(xc * num / den, -1, 1).astype(np.float32)
exact = np.array([math.erf(float(v)) for v in xs])
print(f"largest error over [-8, 8] in float32: {np.abs(approx - exact).max():.2e}")
