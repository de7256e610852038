--[[
A Wireshark dissector (Lua, Wireshark 3.x and 4.x) for the tapnet backend's tunnel format: the
UDP datagrams tapnet nodes send each other, on port 8287 unless the cluster says otherwise.

Install: `tapnet lua-dissector > ~/.local/lib/wireshark/plugins/tapnet.lua`, or for one run:
`tshark -X lua_script:tapnet.lua -r underlay.pcap`. Another port: Decode As (udp.port, "tapnet"),
`tshark -d udp.port==9000,tapnet`, or the preference tapnet.port.

Version 1 (src/wire/tapnet.ts), a 12-byte header, all big-endian:
  version (1) | flags (1) | frame id (2) | frame length (4) | chunk offset (4) | chunk ...
A frame, as a TAP hands it over, is a 10-byte virtio_net_hdr (src/wire/virtio.ts; little-endian;
tapnet uses the 10-byte form, never the 12-byte one with num_buffers) then an Ethernet frame of
up to 64 KB; it is cut into chunks, one a datagram. The chunk at offset 0 starts with the
virtio_net_hdr: it is decoded, and the Ethernet frame after it goes to Wireshark's
"eth_withoutfcs", which decodes the pod's IPv4, TCP and so on.

Version 2 (src/wire/sealed.ts), a version-1 datagram sealed with AES-256-GCM:
  version (2) | flags (1) | key epoch (6) | counter (8) | ciphertext ... | tag (16)
It cannot be read without the cluster's key: the header, the ciphertext's length and the tag
are shown, and the datagram is marked sealed.

Several datagrams in one captured packet: the sender hands the kernel up to 64 datagrams in one
send (UDP_SEGMENT), and a capture taken before the kernel or the NIC cuts them (on a veth or a
bridge, as in `tapnet lab`) holds them back to back in one UDP payload, each as long as the
first but the last. The segment size is not in the capture: it is found as the place where the
next datagram's header follows on from the first's (same frame, the offset moved on by the
chunk; or a new frame right after the first one's last byte; sealed: same epoch, counter + 1).
Each datagram gets a subtree.

A frame is put together from its chunks wherever they lie: in one packet, or spread over several
(captured where the kernel has cut the send into datagrams already: behind a device without UDP
segmentation offload, or from a sender without UDP_SEGMENT). Its inner packet is decoded, whole,
in the packet that brings its last chunk ("tapnet frame" tab; "Frame reassembled from packets"
lists them); the packets before say "Frame reassembled in" (tapnet.reassembled_in, a link) once
the capture has been read through: in Wireshark when a packet is clicked, with tshark's -2. Read in one pass
(tshark without -2) a packet cannot know its frame is finished later: its first chunk is decoded
as far as it goes (Wireshark marks the inner packet cut short). A chunk whose frame never comes
whole is shown as continuation data. Wireshark's Lua has no fragment tables (and desegments over
TCP only), so the dissector keeps its own, by packet addresses, ports, frame id and length.

Malformed datagrams (too short, unknown version, a chunk outside its frame) get an expert info.
]]

local tapnet = Proto("tapnet", "tapnet tunnel")

local DEFAULT_PORT = 8287
local V1_HEADER = 12
local V2_HEADER = 16
local TAG_LEN = 16
local VNET_HDR = 10

local gso_types = { [0] = "none", [1] = "TCPv4", [3] = "UDP", [4] = "TCPv6", [5] = "UDP_L4" }

local f = {
  version = ProtoField.uint8("tapnet.version", "Version", base.DEC, { [1] = "1 (clear)", [2] = "2 (sealed)" }),
  flags = ProtoField.uint8("tapnet.flags", "Flags", base.HEX),
  frame_id = ProtoField.uint16("tapnet.frame_id", "Frame id", base.DEC),
  frame_len = ProtoField.uint32("tapnet.frame_len", "Frame length", base.DEC),
  offset = ProtoField.uint32("tapnet.offset", "Chunk offset", base.DEC),
  chunk_len = ProtoField.uint32("tapnet.chunk_len", "Chunk length", base.DEC),
  continuation = ProtoField.bytes("tapnet.continuation", "Continuation data"),
  reassembled_in = ProtoField.framenum("tapnet.reassembled_in", "Frame reassembled in", base.NONE),
  reassembled_from = ProtoField.string("tapnet.reassembled_from", "Frame reassembled from packets"),
  datagrams = ProtoField.uint32("tapnet.datagrams", "Datagrams in this packet", base.DEC),
  segment_size = ProtoField.uint32("tapnet.segment_size", "Datagram size (UDP_SEGMENT)", base.DEC),
  epoch = ProtoField.uint64("tapnet.epoch", "Key epoch", base.DEC),
  counter = ProtoField.uint64("tapnet.counter", "Counter (nonce)", base.DEC),
  ciphertext = ProtoField.bytes("tapnet.ciphertext", "Ciphertext"),
  ciphertext_len = ProtoField.uint32("tapnet.ciphertext_len", "Ciphertext length", base.DEC),
  tag = ProtoField.bytes("tapnet.tag", "GCM tag"),
  vnet_flags = ProtoField.uint8("tapnet.vnet.flags", "Flags", base.HEX),
  vnet_needs_csum = ProtoField.bool("tapnet.vnet.needs_csum", "NEEDS_CSUM", 8, nil, 0x01),
  vnet_data_valid = ProtoField.bool("tapnet.vnet.data_valid", "DATA_VALID", 8, nil, 0x02),
  vnet_gso_type = ProtoField.uint8("tapnet.vnet.gso_type", "GSO type", base.DEC, gso_types, 0x7f),
  vnet_gso_ecn = ProtoField.bool("tapnet.vnet.gso_ecn", "GSO ECN", 8, nil, 0x80),
  vnet_hdr_len = ProtoField.uint16("tapnet.vnet.hdr_len", "Header length", base.DEC),
  vnet_gso_size = ProtoField.uint16("tapnet.vnet.gso_size", "GSO size", base.DEC),
  vnet_csum_start = ProtoField.uint16("tapnet.vnet.csum_start", "Checksum start", base.DEC),
  vnet_csum_offset = ProtoField.uint16("tapnet.vnet.csum_offset", "Checksum offset", base.DEC),
}
tapnet.fields = f

local e = {
  short = ProtoExpert.new("tapnet.short", "Too short for a tapnet header", expert.group.MALFORMED, expert.severity.ERROR),
  bad_version = ProtoExpert.new("tapnet.bad_version", "Unknown tapnet version", expert.group.MALFORMED, expert.severity.ERROR),
  bad_chunk = ProtoExpert.new("tapnet.bad_chunk", "Chunk outside its frame", expert.group.MALFORMED, expert.severity.ERROR),
  flags = ProtoExpert.new("tapnet.flags_set", "Flags are not 0", expert.group.PROTOCOL, expert.severity.WARN),
  sealed = ProtoExpert.new("tapnet.sealed", "Sealed (AES-256-GCM): cannot be read without the cluster's key", expert.group.DECRYPTION, expert.severity.NOTE),
  continuation = ProtoExpert.new("tapnet.not_reassembled", "Continuation of a frame whose other chunks are not in the capture so far: not reassembled", expert.group.REASSEMBLE, expert.severity.NOTE),
  incomplete = ProtoExpert.new("tapnet.incomplete", "Frame not whole so far: decoded as far as this packet goes", expert.group.REASSEMBLE, expert.severity.NOTE),
}
tapnet.experts = { e.short, e.bad_version, e.bad_chunk, e.flags, e.sealed, e.continuation, e.incomplete }

tapnet.prefs.port = Pref.uint("UDP port", DEFAULT_PORT, "The UDP port of the tapnet backend (backend.port)")

local eth = Dissector.get("eth_withoutfcs")

-- Big-endian unsigned integer of `n` bytes at raw[i+1 ..] (i counts from 0), from a Lua string.
local function be(raw, i, n)
  local v = 0
  for k = 1, n do v = v * 256 + raw:byte(i + k) end
  return v
end

-- The size of each datagram in a payload of `len` bytes whose first datagram is version 1:
-- `len` when there is one datagram.
local function v1_segment_size(raw, len)
  if len <= V1_HEADER then return len end
  local flen, off = be(raw, 4, 4), be(raw, 8, 4)
  if off >= flen then return len end
  local rest = flen - off
  if len <= V1_HEADER + rest then return len end
  -- A chunk in the middle of its frame: the next datagram carries the same frame, further on.
  local same = raw:sub(3, 8)
  for s = V1_HEADER + 1, math.min(V1_HEADER + rest - 1, len - V1_HEADER) do
    if raw:byte(s + 1) == 1 and raw:sub(s + 3, s + 8) == same and be(raw, s + 8, 4) == off + s - V1_HEADER then return s end
  end
  -- The last chunk of its frame: the next datagram starts right after it.
  local s = V1_HEADER + rest
  if s + V1_HEADER < len and raw:byte(s + 1) == 1 then return s end
  return len
end

-- The same for version 2: the next datagram is sealed under the same epoch, the next counter.
local function v2_segment_size(tvb, raw, len)
  local min = V2_HEADER + V1_HEADER + 1 + TAG_LEN
  if len < 2 * min then return len end
  local epoch = raw:sub(3, 8)
  local next = tvb(8, 8):uint64() + 1
  for s = min, len - min do
    if raw:byte(s + 1) == 2 and raw:byte(s + 2) == 0 and raw:sub(s + 3, s + 8) == epoch and tvb(s + 8, 8):uint64() == next then return s end
  end
  return len
end

-- Decodes a whole frame (virtio_net_hdr, then Ethernet) in `ftvb`; returns the inner Info text.
local function decode_frame(ftvb, pinfo, tree, sub)
  local n = ftvb:len()
  if n < VNET_HDR then
    sub:add_proto_expert_info(e.incomplete, "Frame shorter than its virtio_net_hdr")
    return nil
  end
  local v = sub:add(ftvb(0, VNET_HDR), "virtio_net_hdr")
  local fl = v:add(f.vnet_flags, ftvb(0, 1))
  fl:add(f.vnet_needs_csum, ftvb(0, 1))
  fl:add(f.vnet_data_valid, ftvb(0, 1))
  v:add(f.vnet_gso_type, ftvb(1, 1))
  v:add(f.vnet_gso_ecn, ftvb(1, 1))
  v:add_le(f.vnet_hdr_len, ftvb(2, 2))
  v:add_le(f.vnet_gso_size, ftvb(4, 2))
  v:add_le(f.vnet_csum_start, ftvb(6, 2))
  v:add_le(f.vnet_csum_offset, ftvb(8, 2))
  v:append_text(string.format(": gso %s, size %d", gso_types[ftvb(1, 1):uint() % 128] or "?", ftvb(4, 2):le_uint()))
  if n == VNET_HDR then return nil end
  eth:call(ftvb(VNET_HDR):tvb(), pinfo, tree)
  return tostring(pinfo.cols.info)
end

local function range_text(first, last, flen, count)
  if count == 1 then return string.format("chunk %d-%d of %d", first, last, flen) end
  return string.format("chunks %d-%d of %d in %d datagrams", first, last, flen, count)
end

-- Reassembly across captured packets. Wireshark's Lua has no fragment tables and TCP-only
-- desegmenting, so the dissector keeps its own: on the first pass over a capture (pinfo.visited
-- false) each chunk that is not a whole frame goes to the frame it belongs to, known by the
-- packet's addresses and ports, frame id and frame length; the frame is whole when its chunks
-- cover it end to end. What each datagram of each packet became is kept by packet number, so a
-- later pass (tshark -2, Wireshark when a packet is clicked) shows the same without redoing it.
local frames = {} -- frame key → { chunks = {offset → ByteArray}, have = bytes, packets = {numbers}, done_in = number }
local seen = {} -- packet number → { [datagram index] = { asm = frame, whole = ByteArray or nil } }
local MAX_PENDING = 4096 -- frames begun and not finished, at most; the oldest half is forgotten beyond

local pending_count = 0
function tapnet.init()
  frames, seen, pending_count = {}, {}, 0
end

-- Adds a chunk; returns the frame's assembly and, if the chunk made it whole, its bytes.
local function add_chunk(key, flen, off, bytes, number)
  local a = frames[key]
  if a and (a.done_in or (off == 0 and a.chunks[0])) then a = nil end -- the id came round again
  if not a then
    if pending_count >= MAX_PENDING then
      local n = 0
      for k, old in pairs(frames) do
        if not old.done_in then frames[k] = nil; n = n + 1 end
        if n >= MAX_PENDING / 2 then break end
      end
      pending_count = pending_count - n
    end
    a = { chunks = {}, have = 0, packets = {}, flen = flen }
    frames[key] = a
    pending_count = pending_count + 1
  end
  if not a.chunks[off] then
    a.chunks[off] = bytes
    a.have = a.have + bytes:len()
  end
  if a.packets[#a.packets] ~= number then a.packets[#a.packets + 1] = number end
  if a.have < flen then return a, nil end
  local whole, at = ByteArray.new(), 0
  while at < flen do
    local c = a.chunks[at]
    if not c then return a, nil end -- overlapping chunks: not whole after all
    whole:append(c)
    at = at + c:len()
  end
  if at ~= flen then return a, nil end
  a.done_in, a.chunks = number, {}
  pending_count = pending_count - 1
  return a, whole
end

local function packet_list(a)
  local t = {}
  for _, n in ipairs(a.packets) do t[#t + 1] = "#" .. n end
  return table.concat(t, ", ")
end

local function dissect_v1(tvb, pinfo, tree, root, raw, len)
  local S = v1_segment_size(raw, len)
  local count = math.ceil(len / S)
  if count > 1 then
    root:add(f.datagrams, count):set_generated()
    root:add(f.segment_size, S):set_generated()
  end
  local conv = string.format("%s:%d>%s:%d", tostring(pinfo.src), pinfo.src_port, tostring(pinfo.dst), pinfo.dst_port)
  local first_pass = not pinfo.visited
  local mine = seen[pinfo.number]
  if first_pass or not mine then mine = {}; seen[pinfo.number] = mine end
  local summary, inner = {}, {}
  local function note(d)
    local last = summary[#summary]
    if last and last.id == d.id and last.flen == d.flen and last.to == d.off then
      last.to, last.count = d.off + d.clen, last.count + 1
    else
      summary[#summary + 1] = { id = d.id, flen = d.flen, from = d.off, to = d.off + d.clen, count = 1 }
    end
  end
  local firsts = {} -- the first chunks of frames not whole in this packet: { chunk, sub, asm }
  for k = 0, count - 1 do
    local at = k * S
    local dlen = math.min(S, len - at)
    local d = tvb(at, dlen)
    local sub = root:add(d, count > 1 and string.format("Datagram %d", k + 1) or "Datagram")
    if dlen <= V1_HEADER or raw:byte(at + 1) ~= 1 then
      sub:add_proto_expert_info(dlen <= V1_HEADER and e.short or e.bad_version)
      summary[#summary + 1] = { bad = true }
    else
      local id, flen, off = be(raw, at + 2, 2), be(raw, at + 4, 4), be(raw, at + 8, 4)
      local clen = dlen - V1_HEADER
      sub:add(f.version, tvb(at, 1))
      local fi = sub:add(f.flags, tvb(at + 1, 1))
      if raw:byte(at + 2) ~= 0 then fi:add_proto_expert_info(e.flags) end
      sub:add(f.frame_id, tvb(at + 2, 2))
      sub:add(f.frame_len, tvb(at + 4, 4))
      sub:add(f.offset, tvb(at + 8, 4))
      sub:add(f.chunk_len, clen):set_generated()
      sub:append_text(string.format(": frame %d, chunk %d-%d of %d", id, off, off + clen, flen))
      note({ id = id, flen = flen, off = off, clen = clen })
      local chunk = tvb(at + V1_HEADER, clen)
      if off + clen > flen then
        sub:add_proto_expert_info(e.bad_chunk, string.format("Chunk %d-%d is outside its frame of %d bytes", off, off + clen, flen))
      elseif off == 0 and clen == flen then
        inner[#inner + 1] = decode_frame(chunk:tvb(), pinfo, tree, sub)
      else
        if first_pass then
          local asm, whole = add_chunk(string.format("%s/%d/%d", conv, id, flen), flen, off, chunk:bytes(), pinfo.number)
          mine[k] = { asm = asm, whole = whole }
        end
        local m = mine[k] or {}
        if off > 0 then sub:add(f.continuation, chunk):append_text(string.format(" (of frame %d)", id)) end
        if m.whole then
          local it = sub:add(f.reassembled_from, packet_list(m.asm))
          it:set_generated()
          it:append_text(string.format(" (%d bytes)", flen))
          inner[#inner + 1] = decode_frame(m.whole:tvb("tapnet frame"), pinfo, tree, sub)
        elseif off == 0 then
          firsts[#firsts + 1] = { chunk = chunk, sub = sub, asm = m.asm }
        elseif m.asm and m.asm.done_in and m.asm.done_in ~= pinfo.number then
          sub:add(f.reassembled_in, m.asm.done_in):set_generated()
        elseif not (m.asm and m.asm.done_in) then
          sub:add_proto_expert_info(e.continuation)
        end
      end
    end
  end
  -- A frame begun here: whole further on in this packet (decoded there), whole in a later one
  -- (said so), or not whole so far (what this packet holds of it, decoded as far as it goes).
  for _, x in ipairs(firsts) do
    local done = x.asm and x.asm.done_in
    if done and done ~= pinfo.number then
      x.sub:add(f.reassembled_in, done):set_generated()
    elseif not done then
      x.sub:add_proto_expert_info(e.incomplete)
      inner[#inner + 1] = decode_frame(x.chunk:tvb(), pinfo, tree, x.sub)
    end
  end
  local parts = {}
  for _, s in ipairs(summary) do
    parts[#parts + 1] = s.bad and "malformed datagram" or string.format("frame %d, %s", s.id, range_text(s.from, s.to, s.flen, s.count))
  end
  local info = "tapnet v1: " .. table.concat(parts, "; ")
  if #inner > 0 then info = info .. " | " .. table.concat(inner, "; ") end
  return info
end

local function dissect_v2(tvb, pinfo, tree, root, raw, len)
  local S = v2_segment_size(tvb, raw, len)
  local count = math.ceil(len / S)
  if count > 1 then
    root:add(f.datagrams, count):set_generated()
    root:add(f.segment_size, S):set_generated()
  end
  local first, last, bytes, bad = nil, nil, 0, 0
  for k = 0, count - 1 do
    local at = k * S
    local dlen = math.min(S, len - at)
    local sub = root:add(tvb(at, dlen), count > 1 and string.format("Sealed datagram %d", k + 1) or "Sealed datagram")
    if dlen < V2_HEADER + TAG_LEN or raw:byte(at + 1) ~= 2 then
      sub:add_proto_expert_info(dlen < V2_HEADER + TAG_LEN and e.short or e.bad_version)
      bad = bad + 1
    else
      local ctlen = dlen - V2_HEADER - TAG_LEN
      sub:add(f.version, tvb(at, 1))
      local fi = sub:add(f.flags, tvb(at + 1, 1))
      if raw:byte(at + 2) ~= 0 then fi:add_proto_expert_info(e.flags) end
      sub:add(f.epoch, tvb(at + 2, 6))
      sub:add(f.counter, tvb(at + 8, 8))
      if ctlen > 0 then sub:add(f.ciphertext, tvb(at + V2_HEADER, ctlen)) end
      sub:add(f.ciphertext_len, ctlen):set_generated()
      sub:add(f.tag, tvb(at + V2_HEADER + ctlen, TAG_LEN))
      sub:add_proto_expert_info(e.sealed)
      local counter = tvb(at + 8, 8):uint64()
      sub:append_text(string.format(": epoch %s, counter %s, %d bytes of ciphertext", tostring(tvb(at + 2, 6):uint64()), tostring(counter), ctlen))
      first = first or { epoch = tvb(at + 2, 6):uint64(), counter = counter }
      last = counter
      bytes = bytes + ctlen
    end
  end
  if not first then return "tapnet: malformed datagram" end
  local counters = count - bad > 1 and string.format("counters %s-%s", tostring(first.counter), tostring(last)) or "counter " .. tostring(first.counter)
  local what = count > 1 and string.format("%d datagrams, ", count) or ""
  return string.format("tapnet v2, sealed: %sepoch %s, %s, %d bytes of ciphertext", what, tostring(first.epoch), counters, bytes)
    .. (bad > 0 and string.format(" (%d malformed)", bad) or "")
end

function tapnet.dissector(tvb, pinfo, tree)
  local len = tvb:len()
  local root = tree:add(tapnet, tvb())
  local info
  local version = len > 0 and tvb(0, 1):uint() or nil
  if version == 1 and len > V1_HEADER then
    info = dissect_v1(tvb, pinfo, tree, root, tvb:raw(), len)
  elseif version == 2 and len >= V2_HEADER + TAG_LEN then
    info = dissect_v2(tvb, pinfo, tree, root, tvb:raw(), len)
  elseif version == 1 or version == 2 or len == 0 then
    root:add_proto_expert_info(e.short, string.format("%d bytes: too short for a tapnet version %s datagram", len, tostring(version or "?")))
    info = "tapnet: too short"
  else
    root:add(f.version, tvb(0, 1))
    root:add_proto_expert_info(e.bad_version, string.format("Unknown tapnet version %d", version))
    info = string.format("tapnet: unknown version %d", version)
  end
  -- The inner frames' dissectors set the columns; the tunnel's own story comes first.
  if not info:find(" | ", 1, true) then pinfo.cols.protocol = "tapnet" end
  pinfo.cols.info:clear_fence() -- an inner dissector may have fenced its text: ours holds it already
  pinfo.cols.info = info
  return len
end

local udp_port = DissectorTable.get("udp.port")
local port = tapnet.prefs.port
udp_port:add(port, tapnet)
if udp_port.add_for_decode_as then udp_port:add_for_decode_as(tapnet) end

function tapnet.prefs_changed()
  if tapnet.prefs.port ~= port then
    udp_port:remove(port, tapnet)
    port = tapnet.prefs.port
    udp_port:add(port, tapnet)
  end
end
