"""Kernels more than one test module runs (one definition, not copies)."""
import ttlang as ttl


def row_broadcast(gx, gy, op, dst_start=1):
    """A (gx, gy) kernel in which the first core of each row reads one tile and sends it
    along the row through a pipe; every core stores op(tile) into its own output tile.
    The pipes go to columns dst_start.. of the row (0: the range holds the source too)."""

    @ttl.kernel(grid=(gx, gy))
    def bcast_rows(src, out):
        buf = ttl.make_dataflow_buffer_like(src, shape=(1, 1))
        ob = ttl.make_dataflow_buffer_like(out, shape=(1, 1))
        net = ttl.PipeNet([ttl.Pipe(src=(0, y), dst=(slice(dst_start, gx), y)) for y in range(gy)])

        @ttl.datamovement()
        def read():
            _, y = ttl.core(dims=2)
            with buf.reserve() as blk:
                def send(pipe):
                    ttl.copy(src[y:y + 1, 0:1], blk).wait()
                    ttl.copy(blk, pipe).wait()

                def recv(pipe):
                    ttl.copy(pipe, blk).wait()
                net.if_src(send)
                net.if_dst(recv)

        @ttl.compute()
        def comp():
            with buf.wait() as b, ob.reserve() as o:
                o.store(op(b))

        @ttl.datamovement()
        def write():
            x_, y = ttl.core(dims=2)
            with ob.wait() as o:
                ttl.copy(o, out[y:y + 1, x_:x_ + 1]).wait()

    return bcast_rows
