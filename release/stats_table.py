"""`default_request_count` for the whole-percent weights phases use, precomputed so that a smoke
check needs neither the search nor scipy to size itself.

Each value is `release.stats.exact_request_count(weight)`; tests/test_stats.py checks every one.
After a change to the rule's constants (ALPHA, POWER, DETECTABLE_SHIFT, MIN_/MAX_REQUESTS),
regenerate it with

    .venv/bin/python -c "from release.stats import exact_request_count as n; \
        print({i / 100: n(i / 100) for i in range(1, 100)})"
"""

# Keyed by the float weight itself: a weight that is not exactly one of these (0.1 is,
# 0.3 - 0.2 is not) is searched instead, so the table never changes a result.
REQUEST_COUNTS: dict[float, int] = {
    0.01: 757, 0.02: 379, 0.03: 253, 0.04: 221, 0.05: 255, 0.06: 276, 0.07: 301, 0.08: 323,
    0.09: 348, 0.1: 381, 0.11: 395, 0.12: 423, 0.13: 442, 0.14: 461, 0.15: 486, 0.16: 500,
    0.17: 526, 0.18: 541, 0.19: 556, 0.2: 573, 0.21: 589, 0.22: 603, 0.23: 620, 0.24: 636,
    0.25: 651, 0.26: 667, 0.27: 675, 0.28: 687, 0.29: 696, 0.3: 704, 0.31: 720, 0.32: 725,
    0.33: 734, 0.34: 741, 0.35: 747, 0.36: 753, 0.37: 761, 0.38: 766, 0.39: 767, 0.4: 774,
    0.41: 781, 0.42: 779, 0.43: 787, 0.44: 786, 0.45: 784, 0.46: 782, 0.47: 784, 0.48: 781,
    0.49: 781, 0.5: 781, 0.51: 781, 0.52: 781, 0.53: 784, 0.54: 782, 0.55: 784, 0.56: 786,
    0.57: 787, 0.58: 779, 0.59: 781, 0.6: 774, 0.61: 767, 0.62: 766, 0.63: 761, 0.64: 753,
    0.65: 747, 0.66: 741, 0.67: 734, 0.68: 725, 0.69: 720, 0.7: 704, 0.71: 696, 0.72: 687,
    0.73: 675, 0.74: 667, 0.75: 651, 0.76: 636, 0.77: 620, 0.78: 603, 0.79: 589, 0.8: 573,
    0.81: 556, 0.82: 541, 0.83: 526, 0.84: 500, 0.85: 486, 0.86: 461, 0.87: 442, 0.88: 423,
    0.89: 395, 0.9: 381, 0.91: 348, 0.92: 323, 0.93: 301, 0.94: 276, 0.95: 255, 0.96: 221,
    0.97: 253, 0.98: 379, 0.99: 757,
}
