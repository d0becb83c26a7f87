"""The simulator and developer tools: the synthetic retailer with known ground truth (`generator` and the
modules it uses), bring-your-own-data import (`byod`) and `make demo` (`demo`).

A leaf: nothing in core, stages, local or wiring imports it. May import anything below it.
"""
