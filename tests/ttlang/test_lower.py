"""What the compiler makes of a statement: common subexpressions computed once."""
import numpy as np

import ttlang as ttl
from ttlang import testing as tt
from tests.ttlang.conftest import run_blocks


def test_repeated_subexpressions_are_computed_once():
    """softmax written the plain way uses exp(a - rowmax) twice and rowmax twice; each is
    computed once, spilled, and read back where it is used again."""
    x = tt.array((64, 128), "bf16", 9)

    def softmax(a):
        e = ttl.math.exp(a - ttl.math.broadcast(a.rowmax(), dims=[1]))
        return e / ttl.math.broadcast(e.rowsum(), dims=[1])

    (xq,), out, rep, k = run_blocks(softmax, [x], block=(1, 4), grid=(2, 1))
    code = k.show()
    assert code.count("'exp'") == 1 and code.count("'max', 'row'") == 1
    ref = np.exp(xq - xq.max(1, keepdims=True))
    ref /= ref.sum(1, keepdims=True)
    # e is rounded in DST and stored (bf16), its row sum reaches the divide through a
    # source register; every step is one bf16 rounding of a well-conditioned value
    tt.assert_close(out, ref, "bf16", ops=6)
