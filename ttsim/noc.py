"""NoC and DRAM timing: a first-come-first-served reservation model (no simpy).

The engine calls a `Noc` in non-decreasing global time order (it syncs first); each call
reserves what its packets use and returns completion times at once. Resources:

- links, one per (noc, x, y, direction): the link leaving router (x, y) towards
  "+x", "-x", "+y" or "-y";
- NIU ports: per core and per NoC one injection port (NIU -> router, reads the L1) and one
  ejection port (router -> NIU, writes the L1), `noc.l1_port_bytes_per_cycle` wide; a core
  answering a read request streams its L1 out at `noc.read_response_bytes_per_cycle`;
- DRAM banks, shared by both NoCs, with their bandwidth and latency. A DRAM endpoint has no
  NIU port resource: its bank takes the port's place. A write packet holds its bank at least
  `dram.write_request_cycles`, and `dram.partial_write_cycles` when it is smaller than
  `dram.write_burst_bytes` (a read-modify-write).

A data packet carries at most `noc.max_packet_bytes` and is `noc.header_flits` +
ceil(payload / `noc.flit_bytes`) flits. Its head reaches the source resource at its start s, the
link of hop k at s + niu + k * hop and the destination resource at s + niu + h * hop
(wormhole routing: the body streams behind the head). It holds each resource for
flits * flit_bytes / (the resource's bytes per cycle) cycles, to the nearest cycle, from the
moment its head arrives; its last byte lands s + 2 * niu + h * hop + (longest hold on the
path), plus the bank latency when it lands in DRAM. A packet starts at the earliest time >=
its lower bound at which every resource on its path is free for its whole hold; resources
keep their busy intervals, so a later call can use a gap left before a reservation an
earlier call made for the future, but never a time an earlier call holds. Header-only
packets (read requests, write acks) pay their route's latency and hold only the NIU ports at
their two ends.

Reads: one request per response packet, requester -> source; for a DRAM source the data
leaves bank-latency cycles after the request arrives. Writes: data source -> destination,
one ack per packet back to the source, sent when the packet has landed. Multicast: one
packet follows the tree to every destination, each unlinked packet first reserving the whole
tree (setup plus a round trip to the deepest destination), a linked one keeping it reserved
for the next; one ack per destination. Everything is in
whole cycles (issue times are rounded up). See docs/cycle-model.md, "NoC and DRAM".
"""
from __future__ import annotations

from bisect import bisect_right as _bisect_right
from math import ceil

from .errors import NocError

__all__ = ["Noc", "estimate_batch"]

_EPS = 1e-9
_PRUNE_AT = 16          # prune a resource's past intervals once it holds this many


def _ceil(x) -> int:
    return int(ceil(x - _EPS))


class _Res:
    """One resource: its busy intervals [starts[i], ends[i]) sorted, disjoint and merged
    when they touch. Usage counters live in the plans that use it (see Noc.stats)."""
    __slots__ = ("name", "kind", "starts", "ends", "extra", "full")

    def __init__(self, name, kind, extra=None):
        self.name, self.kind, self.extra = name, kind, extra
        self.starts: list[int] = []
        self.ends: list[int] = []
        # per hold time d, a window (a, b) known to hold no free stretch of d cycles that
        # starts in [a, b): busy intervals are only ever added, so it stays true, and the
        # search for a free stretch can jump over it instead of walking every interval
        self.full: dict[int, list] = {}


class _Path:
    """The resources a packet from one endpoint to another crosses: (resource, head offset,
    cycles held per flit, is-a-DRAM-write, cycles held on top) entries (the last: a
    multicast's path reservation); and per payload size (-1: header only) a ready-made plan:
    ((starts, ends, offset, hold), ...), the longest transfer time, and a [packets, payload
    bytes] counter."""
    __slots__ = ("entries", "hops", "src_lat", "dst_lat", "plans")

    def __init__(self, entries, hops, src_lat, dst_lat):
        self.entries, self.hops, self.src_lat, self.dst_lat = entries, hops, src_lat, dst_lat
        self.plans: dict[int, tuple] = {}


class Noc:
    """FCFS reservation model of the NoCs, NIU ports and DRAM banks of one chip."""

    def __init__(self, sd):
        self.sd = sd
        w, h = sd.noc_grid
        self.grid = (int(w), int(h))
        self.torus = bool(sd.torus)
        self.num_nocs = int(sd.num_nocs)
        v = sd.value
        self.link_bytes = float(v("noc.link_bytes_per_cycle"))
        self.flit_bytes = float(v("noc.flit_bytes"))
        self.hop = _ceil(v("noc.hop_latency"))
        self.niu = _ceil(v("noc.niu_latency"))
        self.max_packet = int(v("noc.max_packet_bytes"))
        self.port_bytes = float(v("noc.l1_port_bytes_per_cycle"))
        self.response_bytes = float(v("noc.read_response_bytes_per_cycle"))
        self.header_flits = int(v("noc.header_flits"))
        self._dram_wmin = _ceil(v("dram.write_request_cycles"))
        self._dram_burst = int(v("dram.write_burst_bytes"))
        self._dram_partial = _ceil(v("dram.partial_write_cycles"))
        self._mc_setup = float(v("noc.mcast_setup_cycles"))
        self._mc_hop = float(v("noc.mcast_reserve_cycles_per_hop"))
        for name, val in (("noc.link_bytes_per_cycle", self.link_bytes),
                          ("noc.flit_bytes", self.flit_bytes),
                          ("noc.max_packet_bytes", self.max_packet),
                          ("noc.l1_port_bytes_per_cycle", self.port_bytes),
                          ("noc.read_response_bytes_per_cycle", self.response_bytes)):
            if val <= 0:
                raise NocError(f"{name} must be > 0 (got {val})")
        if self.header_flits < 1:
            raise NocError(f"noc.header_flits must be >= 1 (got {self.header_flits})")
        if self.hop < 0 or self.niu < 0:
            raise NocError("noc.hop_latency and noc.niu_latency must be >= 0")
        for name in ("noc.l1_align_bytes", "noc.dram_read_align_bytes", "noc.dram_write_align_bytes"):
            a = v(name)
            if a < 1 or a != int(a):
                raise NocError(f"{name} must be a whole number of bytes >= 1 (got {a})")
        if self._mc_setup < 0 or self._mc_hop < 0:
            raise NocError("noc.mcast_setup_cycles and noc.mcast_reserve_cycles_per_hop must be >= 0")
        # cycles a resource holds per flit: a flit is flit_bytes, whatever the resource's rate
        self._link_ratio = self.flit_bytes / self.link_bytes
        self._port_ratio = self.flit_bytes / self.port_bytes
        self._resp_ratio = self.flit_bytes / self.response_bytes
        # an ack (header only) at a port: as _plan rounds a header's hold
        self._ack_hold = max(1, int(self.header_flits * self._port_ratio + 0.5))

        # DRAM banks by NoC endpoint. Banks that share an endpoint act as one resource with
        # their summed bandwidth and the larger latency.
        groups: dict[tuple, list] = {}
        for b in sd.dram_banks:
            groups.setdefault(tuple(int(c) for c in b.noc_xy), []).append(b)
        self._dram: dict[tuple, tuple[_Res, int, float]] = {}
        for xy, banks in groups.items():
            bw = sum(float(b.bandwidth.value) for b in banks)
            if bw <= 0:
                raise NocError(f"DRAM bank {banks[0].id} at {xy}: bandwidth must be > 0")
            lat = max(_ceil(b.latency.value) for b in banks)
            ids = "+".join(str(b.id) for b in banks)
            self._dram[xy] = (_Res(f"dram {ids} ({xy[0]},{xy[1]})", "dram",
                                   {"banks": [b.id for b in banks], "xy": list(xy),
                                    "bytes_per_cycle": bw, "latency": lat}), lat,
                              self.flit_bytes / bw)

        self._worker_x = tuple(int(x) for x in sd.worker_x)
        self._worker_y = tuple(int(y) for y in sd.worker_y)
        self._links: dict[tuple, _Res] = {}
        self._ports: dict[tuple, _Res] = {}
        self._routes: dict[tuple, tuple] = {}
        self._paths: dict[tuple, _Path] = {}
        self._mcast: dict[tuple, tuple] = {}
        self._linked: dict[tuple, tuple] = {}      # (noc, src) -> the tree a linked multicast holds
        self.last_landed_each: list = []             # set by each multicast_write
        self._mc_last: dict[tuple, int] = {}       # (noc, src) -> start of its last multicast packet
        self._w_last: dict[tuple, int] = {}        # (noc, src, dst) -> start of its last write packet
        self._ackq: dict[tuple, int] = {}          # (noc, src) -> when its multicast acks are counted
        self._recipes: dict[tuple, tuple] = {}
        self._all_paths: list[_Path] = []
        self._now = 0                  # latest issue time seen: intervals ending before it are dead
        self._counts = {"read": 0, "write": 0, "multicast_write": 0, "atomic_inc": 0,
                        "packets": 0, "acks": 0, "bytes": 0, "mcast_reservations": 0}

    # --- routing ------------------------------------------------------------------------
    def _check(self, noc, xy, what):
        if not (0 <= noc < self.num_nocs):
            raise NocError(f"NoC index {noc} does not exist (this chip has {self.num_nocs})")
        w, h = self.grid
        if not (0 <= xy[0] < w and 0 <= xy[1] < h):
            raise NocError(f"{what} ({xy[0]},{xy[1]}) is outside the {w}x{h} NoC grid")

    def route(self, noc: int, src_xy, dst_xy) -> tuple:
        """The links a packet crosses from src to dst on `noc`, in order: (noc, x, y, dir),
        the link leaving router (x, y) in direction dir ("+x", "-x", "+y", "-y").

        Dimension-ordered: even NoCs (NoC 0) go X first in +x, then Y in +y; odd NoCs (NoC 1)
        go Y first in -y, then X in -x. On a torus coordinates wrap, so a route always moves
        in its NoC's directions; on a mesh each dimension moves towards the destination."""
        key = (noc, src_xy[0], src_xy[1], dst_xy[0], dst_xy[1])
        r = self._routes.get(key)
        if r is None:
            self._check(noc, src_xy, "source")
            self._check(noc, dst_xy, "destination")
            r = self._routes[key] = self._compute_route(noc, src_xy, dst_xy)
        return r

    def _compute_route(self, noc, src, dst):
        w, h = self.grid
        x, y = int(src[0]), int(src[1])
        dx, dy = int(dst[0]), int(dst[1])
        fwd = noc % 2 == 0
        sign = 1 if fwd else -1
        links = []
        for dim in (("x", "y") if fwd else ("y", "x")):
            if dim == "x":
                while x != dx:
                    step = sign if self.torus else (1 if dx > x else -1)
                    links.append((noc, x, y, "+x" if step > 0 else "-x"))
                    x = (x + step) % w
            else:
                while y != dy:
                    step = sign if self.torus else (1 if dy > y else -1)
                    links.append((noc, x, y, "+y" if step > 0 else "-y"))
                    y = (y + step) % h
        return tuple(links)

    # --- resources and paths ------------------------------------------------------------
    def _link(self, key):
        r = self._links.get(key)
        if r is None:
            noc, x, y, d = key
            r = self._links[key] = _Res(f"noc{noc} ({x},{y}) {d}", "link")
        return r

    def _port(self, noc, xy, kind):
        key = (noc, xy[0], xy[1], kind)
        r = self._ports.get(key)
        if r is None:
            r = self._ports[key] = _Res(f"noc{noc} ({xy[0]},{xy[1]}) {kind}", "port")
        return r

    def _new_path(self, entries, hops, src_lat=0, dst_lat=0):
        p = _Path(tuple(entries), hops, src_lat, dst_lat)
        self._all_paths.append(p)
        return p

    def _path(self, noc, src, dst, header_only=False, response=False):
        """The _Path for packets src -> dst.

        Data packets reserve the source's injection port (or DRAM bank), every link of the
        route and the destination's ejection port (or DRAM bank). A read response (response)
        leaves a core's L1 at the read-response rate instead of the port's. Header-only
        packets (read requests, write acks) reserve only the NIU ports at their two ends,
        never a DRAM bank or a link: they pay the route's latency but their one flit per
        link is left out of link occupancy (see docs/cycle-model.md)."""
        key = (noc, src[0], src[1], dst[0], dst[1], header_only, response)
        p = self._paths.get(key)
        if p is not None:
            return p
        links = self.route(noc, src, dst)
        niu, hop = self.niu, self.hop
        entries = []
        ds = self._dram.get((src[0], src[1]))
        dd = self._dram.get((dst[0], dst[1]))
        if ds is None:
            entries.append((self._port(noc, src, "inj"), 0,
                            self._resp_ratio if response else self._port_ratio, False, 0))
        elif not header_only:
            entries.append((ds[0], 0, ds[2], False, 0))
        if not header_only:
            lr = self._link_ratio
            for k, lk in enumerate(links):
                entries.append((self._link(lk), niu + k * hop, lr, False, 0))
        if dd is None:
            entries.append((self._port(noc, dst, "ej"), niu + len(links) * hop, self._port_ratio,
                            False, 0))
        elif not header_only:
            entries.append((dd[0], niu + len(links) * hop, dd[2], True, 0))
        p = self._paths[key] = self._new_path(entries, len(links), ds[1] if ds else 0,
                                              dd[1] if dd else 0)
        return p

    def _plan(self, path, payload):
        """The plan for one packet of `payload` bytes (-1: header only) along `path`.

        Each resource is held for the packet's flits at its rate (flit bytes over its bytes
        per cycle); a DRAM bank taking a write at least `dram.write_request_cycles`, and
        `dram.partial_write_cycles` for a write smaller than a burst; a multicast's tree for
        its path reservation on top. That extra occupancy delays the packets after it, not
        this one's data: the longest transfer time, which sets when the last byte lands,
        counts flits (on a link at least, even for a packet that holds no link)."""
        pl = path.plans.get(payload)
        if pl is None:
            flits = self.header_flits if payload < 0 else self._flits(payload)
            items = []
            dmax = max(1, int(flits * self._link_ratio + 0.5))
            for res, off, r, dram_write, add in path.entries:
                # nearest whole cycle (at least one): rounding up would make a one-flit ack
                # take two cycles at a port a hair narrower than the link
                d = flits if r == 1.0 else max(1, int(flits * r + 0.5))
                dmax = max(dmax, d)
                if dram_write and payload >= 0:
                    d = max(d, self._dram_wmin,
                            self._dram_partial if payload < self._dram_burst else 0)
                items.append((res.starts, res.ends, off, d + add, res.full))
            # the last item: a window [a, b) of starts known not to fit this plan (see _place)
            pl = path.plans[payload] = (tuple(items), dmax, [0, 0], [0, 0])
        return pl

    # --- the reservation core -------------------------------------------------------------
    def _place(self, plan, lb, payload):
        """Reserve one packet along `plan` at the earliest start >= lb at which every
        resource is free for its holding time from the moment the head reaches it.

        Returns (start, longest holding time on the path)."""
        items, dmax, ctr, win = plan
        bisect_right = _bisect_right
        # No start in [win[0], win[1]) fits this plan: an earlier search proved it, and
        # reservations are only ever added. Packets of one path follow each other, so the
        # next one jumps over what the last one searched (exact: the result is the same).
        s = win[1] if win[0] <= lb < win[1] else lb
        n = len(items)
        i = ok = 0
        while ok < n:      # round robin until every resource agrees with s (s only grows)
            st, en, off, d, full = items[i]
            i = i + 1 if i + 1 < n else 0
            ok += 1
            if en:
                a = s + off
                if en[-1] > a:
                    j = bisect_right(en, a)
                    if st[j] < a + d:
                        w = full.get(d)
                        if w is not None and w[0] <= a < w[1]:
                            # nothing fits before w[1]: resume the walk from there, at the
                            # first free time >= w[1]
                            b = w[1]
                            j = bisect_right(en, b)
                            if j < len(en) and st[j] <= b:
                                b = en[j]
                                j += 1
                        else:
                            w = None
                            b = en[j]
                            j += 1
                        m = len(en)
                        while j < m and st[j] < b + d:
                            b = en[j]
                            j += 1
                        if w is None:
                            full[d] = [a, b]
                        else:
                            w[1] = b
                        s = b - off
                        ok = 1         # this resource agrees now; the others must be checked again
        if win[0] <= lb < win[1]:
            win[1] = s
        else:
            win[0], win[1] = lb, s
        for st, en, off, d, full in items:
            x = s + off
            e = x + d
            if not en:
                st.append(x)
                en.append(e)
                continue
            last = en[-1]
            if last <= x:
                if last == x:
                    en[-1] = e
                else:
                    st.append(x)
                    en.append(e)
                    if len(en) > _PRUNE_AT:
                        k = bisect_right(en, self._now)
                        if k:
                            del st[:k], en[:k]
            else:
                j = bisect_right(en, x)      # first interval ending after x; it starts >= e
                prev = j > 0 and en[j - 1] == x
                nxt = st[j] == e
                if prev and nxt:
                    en[j - 1] = en[j]
                    del st[j], en[j]
                elif prev:
                    en[j - 1] = e
                elif nxt:
                    st[j] = x
                else:
                    st.insert(j, x)
                    en.insert(j, e)
        ctr[0] += 1
        ctr[1] += payload
        return s, dmax

    def _start(self, t):
        t = _ceil(t)
        if t > self._now:
            self._now = t
        return t

    def _packets(self, nbytes):
        nbytes = int(nbytes)
        if nbytes < 0:
            raise NocError(f"transfer of {nbytes} bytes")
        mp = self.max_packet
        if nbytes <= mp:
            return (nbytes,)
        full, rest = divmod(nbytes, mp)
        return (mp,) * full + ((rest,) if rest else ())

    def _flits(self, payload):
        return self.header_flits + _ceil(payload / self.flit_bytes)

    # --- transfers ------------------------------------------------------------------------
    def _recipe(self, kind, noc, a, b, nbytes):
        """Cached per (kind, noc, endpoints, size): the data packets' (plan, payload) list,
        the latency added to a data packet's start (plus its hold), and the header-only
        packet's plan and latency (write: the ack b -> a; read: the request a -> b)."""
        a = (a[0], a[1])
        b = (b[0], b[1])
        nbytes = int(nbytes)
        niu2 = 2 * self.niu
        if kind == "w":
            path = self._path(noc, a, b)
            hdr = self._path(noc, b, a, header_only=True)
            lat = niu2 + path.hops * self.hop + path.dst_lat
            hdr_lat = niu2 + hdr.hops * self.hop
        else:                                  # read: requester a, source b
            hdr = self._path(noc, a, b, header_only=True)
            path = self._path(noc, b, a, response=True)
            lat = niu2 + path.hops * self.hop
            hdr_lat = niu2 + hdr.hops * self.hop + path.src_lat
        data = tuple((self._plan(path, p), p) for p in self._packets(nbytes))
        r = (data, lat, self._plan(hdr, -1), hdr_lat, nbytes)
        self._recipes[(kind, noc, a[0], a[1], b[0], b[1], nbytes)] = r
        return r

    def _lookup(self, kind, noc, a, b, nbytes):
        r = self._recipes.get((kind, noc, a[0], a[1], b[0], b[1], nbytes))
        return r if r is not None else self._recipe(kind, noc, a, b, nbytes)

    def write(self, t, noc, src_xy, dst_xy, nbytes):
        """src core's L1 -> dst (a core's L1 or a DRAM bank). Returns (t_landed, t_acked):
        the last byte written at dst, and the (last) write ack back at src."""
        t = self._start(t)
        data, lat, ack_plan, ack_lat, nbytes = self._lookup("w", noc, src_xy, dst_xy, nbytes)
        place = self._place
        # writes from one source to one destination on one NoC arrive in order (one path,
        # one static VC), as multicasts do (see multicast_write)
        key = (noc, src_xy[0], src_xy[1], dst_xy[0], dst_xy[1])
        last = self._w_last.get(key)
        landed = acked = t
        lb = t if last is None or last < t else last + 1
        for plan, payload in data:
            s, dmax = place(plan, lb, payload)
            lb = s + 1
            done = s + lat + dmax
            if done > landed:
                landed = done
            # one ack per packet, header only, back on the same NoC
            sa, amax = place(ack_plan, done, 0)
            a = sa + ack_lat + amax
            if a > acked:
                acked = a
        self._w_last[key] = s
        c = self._counts
        c["write"] += 1
        c["packets"] += 2 * len(data)
        c["acks"] += len(data)
        c["bytes"] += nbytes
        return landed, acked

    def read(self, t, noc, requester_xy, src_xy, nbytes):
        """requester asks src (a core's L1 or a DRAM bank) for nbytes; returns when the last
        byte has landed in the requester's L1."""
        t = self._start(t)
        data, lat, req_plan, req_lat, nbytes = self._lookup("r", noc, requester_xy, src_xy, nbytes)
        place = self._place
        req_lb = lb = landed = t
        for plan, payload in data:
            # one request per response packet, header only
            sr, rmax = place(req_plan, req_lb, 0)
            req_lb = sr + 1
            at_src = sr + req_lat + rmax
            s, dmax = place(plan, at_src if at_src > lb else lb, payload)
            lb = s + 1
            done = s + lat + dmax
            if done > landed:
                landed = done
        c = self._counts
        c["read"] += 1
        c["packets"] += 2 * len(data)
        c["bytes"] += nbytes
        return landed

    def multicast_write(self, t, noc, src_xy, rect, nbytes, include_src=False, linked=False):
        """src core's L1 -> every worker core in the NoC rectangle (x0, y0, x1, y1), inclusive
        (the source itself only if include_src: loopback). Returns (t_all_landed,
        t_all_acked, t_sent): t_sent is when the last packet's data has left the source, which
        is when the NIU's command buffer is free for the next command (ttsim.dataflow waits
        for it).

        A packet reserves its whole tree before its data leaves the source: it holds the
        source's injection port and every tree link for the reservation (the multicast
        setup plus a round trip to the deepest destination, `noc.mcast_setup_cycles` +
        `noc.mcast_reserve_cycles_per_hop` x depth) on top of its flits, so the next packet
        from the source waits for it. A linked packet keeps the path reserved: the next
        packet, of this transfer or of the next multicast from src on this NoC to the same
        rectangle, skips the reservation."""
        t = self._start(t)
        src_xy = (src_xy[0], src_xy[1])
        rect = tuple(int(c) for c in rect)
        key = (noc, src_xy, rect, bool(include_src))
        tr = self._mcast.get(key)
        if tr is None:
            tr = self._mcast_tree(*key)
        reserve, held, dest_hops, ack_hops, r_cycles = tr
        niu, hop = self.niu, self.hop
        lk = (noc, src_xy)
        # the same destinations, whichever corners name the rectangle
        dests = (min(rect[0], rect[2]), min(rect[1], rect[3]), max(rect[0], rect[2]),
                 max(rect[1], rect[3]), bool(include_src))
        holding = self._linked.get(lk) == dests
        # one source's multicasts on one NoC travel in order (one static VC; tt-metal sends a
        # block's "valid" semaphore right behind its data without a barrier and relies on
        # it): a packet never starts before the one issued ahead of it, so it cannot slip into
        # a gap of the tree's links ahead of it and land first
        tail = t
        lb = max(t, self._mc_last.get(lk, -1) + 1)
        packets = self._packets(nbytes)
        nres = 0
        place, plan = self._place, self._plan
        for payload in packets:
            if holding:
                s, dmax = place(plan(held, payload), lb, payload)
            else:
                s, dmax = place(plan(reserve, payload), lb, payload)
                s += r_cycles                      # the data leaves once the path is reserved
                nres += 1
            lb = s + 1
            if s + dmax > tail:
                tail = s + dmax
            holding = linked
        self._mc_last[lk] = s
        sent = s + self._mc_inj(payload)
        if linked:
            self._linked[lk] = dests
        else:
            self._linked.pop(lk, None)
        # Every destination sees the packets at the same head offsets along the tree.
        landed_each = [tail + 2 * niu + h * hop for h in dest_hops]
        landed = max(landed_each)
        # per destination, in the order of the rectangle's workers row by row (as
        # ttsim.dataflow lists them): when its last byte is there
        self.last_landed_each = landed_each
        # Acks: one per destination, header only, sent when the destination has the last
        # byte. They funnel into the source's NIU one ack time each, in arrival order, in
        # a queue of their own per source and NoC (not the port's intervals: dozens of
        # one-cycle acks per call would fragment them). With loopback the port also takes
        # the data, and its hold counts one ack time per destination (see _mcast_tree).
        arrivals = sorted(ld + niu + ah * hop for ld, ah in zip(landed_each, ack_hops))
        q, ah = self._ackq.get(lk, 0), self._ack_hold
        for a in arrivals:
            q = (a if a > q else q) + ah
        self._ackq[lk] = q
        acked = q + niu
        c = self._counts
        c["multicast_write"] += 1
        c["mcast_reservations"] += nres
        c["packets"] += len(packets) + len(arrivals)
        c["acks"] += len(arrivals)
        c["bytes"] += int(nbytes)
        return landed, acked, sent

    def _mc_inj(self, payload):
        return max(1, int(self._flits(payload) * self._port_ratio + 0.5))

    def _mcast_tree(self, noc, src, rect, include_src):
        """(reserving path, held path, hops to each destination, ack hops back, reservation
        cycles) for a multicast, cached. The tree is the union of the dimension-ordered
        routes to every worker in the rectangle; each link is reserved once, at its depth."""
        self._check(noc, src, "multicast source")
        x0, y0, x1, y1 = rect
        xlo, xhi = min(x0, x1), max(x0, x1)
        ylo, yhi = min(y0, y1), max(y0, y1)
        dests = [(x, y) for y in self._worker_y if ylo <= y <= yhi
                 for x in self._worker_x if xlo <= x <= xhi
                 if include_src or (x, y) != src]
        if not dests:
            raise NocError(f"multicast rectangle ({x0},{y0})-({x1},{y1}) holds no destination core")
        niu, hop = self.niu, self.hop
        depth: dict[tuple, int] = {}
        dest_hops, ack_hops = [], []
        for d in dests:
            links = self.route(noc, src, d)
            for k, lk in enumerate(links):
                if depth.get(lk, k) >= k:
                    depth[lk] = k
            dest_hops.append(len(links))
            ack_hops.append(len(self.route(noc, d, src)))
        r_cycles = _ceil(self._mc_setup + self._mc_hop * max(dest_hops))
        pr, lr = self._port_ratio, self._link_ratio
        tree = sorted(depth.items(), key=lambda kv: (kv[1], kv[0]))
        paths = []
        for r in (r_cycles, 0):
            # the source and the links are held from the reservation on; a destination's
            # port only while the data arrives (r cycles later than the head's offset)
            entries = [(self._port(noc, src, "inj"), 0, pr, False, r)]
            entries += [(self._link(lk), niu + k * hop, lr, False, r) for lk, k in tree]
            entries += [(self._port(noc, d, "ej"), r + niu + h * hop, pr, False,
                         self._ack_hold * len(dests) if d == src else 0)
                        for d, h in zip(dests, dest_hops)]
            paths.append(self._new_path(entries, max(dest_hops)))
        tr = self._mcast[(noc, src, rect, include_src)] = (paths[0], paths[1], tuple(dest_hops),
                                                           tuple(ack_hops), r_cycles)
        return tr

    def atomic_inc(self, t, noc, src_xy, dst_xy) -> int:
        """A small packet (header + one data flit) src -> dst core; returns the time the
        increment is applied at dst."""
        t = self._start(t)
        path = self._path(noc, (src_xy[0], src_xy[1]), (dst_xy[0], dst_xy[1]))
        s, dmax = self._place(self._plan(path, 4), t, 4)
        self._counts["atomic_inc"] += 1
        self._counts["packets"] += 1
        return s + 2 * self.niu + path.hops * self.hop + dmax + path.dst_lat

    def atomic_ack(self, noc, src_xy, dst_xy, applied):
        """When the ack of an atomic increment applied at `applied` is back at src: the same
        return path and latency as a write's ack (noc.write), one flit, but not placed on the
        links (this model does not send atomic acks as packets; a wait for them,
        noc_async_atomic_barrier, gets their uncontended time)."""
        _, _, _, ack_lat, _ = self._lookup("w", noc, src_xy, dst_xy, 4)
        return applied + ack_lat + 1

    # --- reporting ------------------------------------------------------------------------
    def stats(self) -> dict:
        """Usage per link, NIU port and DRAM bank that carried anything: payload bytes,
        busy (held) cycles and packets; plus transfer, packet and ack counts. JSON-ready."""
        use: dict[int, list] = {}
        for p in self._all_paths:
            for pl in p.plans.values():
                n, nbytes = pl[2]
                if not n:
                    continue
                for (res, *_), (_, _, _, d, _) in zip(p.entries, pl[0]):
                    u = use.get(id(res))
                    if u is None:
                        u = use[id(res)] = [0, 0, 0]
                    u[0] += nbytes
                    u[1] += n * d
                    u[2] += n

        def table(resources):
            out = {}
            for r in resources:
                u = use.get(id(r))
                if u:
                    out[r.name] = {"bytes": u[0], "busy": u[1], "packets": u[2]}
                    if r.extra:
                        out[r.name].update(r.extra)
            return out
        out = dict(self._counts)
        out["links"] = table(r for _, r in sorted(self._links.items()))
        out["ports"] = table(r for _, r in sorted(self._ports.items()))
        out["dram"] = table(r for _, (r, *_) in sorted(self._dram.items()))
        return out


# --- calibration helper -----------------------------------------------------------------------
def estimate_batch(noc_model, sd, pattern, memory, noc, n, nbytes, same_axis=False,
                   issue_cycles=0, *, fixed_cycles=0, pair=None, bank=None):
    """Cycles for "one core issues n transfers back to back and waits for all of them".

    A NoC-only sketch of the tt-metal data-movement tests behind
    calibration/wormhole_noc_latency.csv, for tests/ttsim/test_noc.py (benchmarks/fidelity.py
    runs the real micro-kernels, RISC-side costs included): transfer i is handed to the NoC
    at t = i * issue_cycles; the result is the time the last one completes (read: landed;
    write: acked) plus `fixed_cycles` (per-batch software overhead, e.g. the barrier).

    noc_model: the Noc class (or any callable sd -> model), or a fresh model instance.
    pattern: "one_from_one" (read), "one_to_one" (write), "one_from_all" (read round-robin
    from every DRAM bank). memory: "l1", "dram_sharded" or "dram_interleaved".
    Placement (the CSV does not record it): the issuing core is logical worker (0, 0); its
    L1 partner is worker (1, 1), or (0, 1) (same column) when same_axis; a sharded DRAM bank
    is the first bank whose endpoint differs from the core in both coordinates, or shares
    one when same_axis (or `bank`, an index). `pair` overrides the core pair as
    ((x, y), (x, y)) logical coordinates. On a torus only the round trip matters, and it
    is the same for every pair that differs in both coordinates (width + height hops)."""
    model = noc_model if isinstance(noc_model, Noc) else noc_model(sd)
    me_l, other_l = pair if pair is not None else ((0, 0), (0, 1) if same_axis else (1, 1))
    me = (sd.worker_x[me_l[0]], sd.worker_y[me_l[1]])
    if memory == "l1":
        targets = [(sd.worker_x[other_l[0]], sd.worker_y[other_l[1]])]
    elif memory == "dram_sharded":
        if bank is not None:
            targets = [tuple(sd.dram_banks[bank].noc_xy)]
        else:
            xys = [tuple(b.noc_xy) for b in sd.dram_banks]
            want = [xy for xy in xys if (xy[0] == me[0] or xy[1] == me[1]) == bool(same_axis)]
            targets = [(want or xys)[0]]
    elif memory == "dram_interleaved":
        targets = [tuple(b.noc_xy) for b in sd.dram_banks]
    else:
        raise ValueError(f"unknown memory {memory!r}")
    done = 0
    for i in range(n):
        t = i * issue_cycles
        tgt = targets[i % len(targets)]
        if pattern in ("one_from_one", "one_from_all"):
            c = model.read(t, noc, me, tgt, nbytes)
        elif pattern == "one_to_one":
            c = model.write(t, noc, me, tgt, nbytes)[1]
        else:
            raise ValueError(f"unknown pattern {pattern!r}")
        if c > done:
            done = c
    return _ceil(done + fixed_cycles)
