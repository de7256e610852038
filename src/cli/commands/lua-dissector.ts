/**
 * `tapnet lua-dissector`: prints the Wireshark dissector of the tapnet backend's tunnel format
 * (dissector/tapnet.lua at the package's root, shipped with it) to stdout, to be saved among
 * Wireshark's plugins. Its --help says how, and gives the decode-as flags for the backends
 * Wireshark already knows (VXLAN, and flannel's udp backend: raw IPv4 in UDP), whose ports are
 * not Wireshark's defaults. The ports come from the backends themselves (tunnel/*.ts).
 */
import { readFileSync } from "node:fs";
import type { Command } from "../args.ts";
import { tapnetBackend } from "../../tunnel/tapnet.ts";
import { repoUrl } from "../../io/runtime.ts";
import { udpBackend } from "../../tunnel/udp.ts";
import { vxlanBackend } from "../../tunnel/vxlan.ts";

/** Where the dissector lies in the package: dissector/tapnet.lua, from src/cli/commands/. */
export const LUA_DISSECTOR_URL = repoUrl("dissector/tapnet.lua");

/**
 * The decode-as flags (tshark, wireshark) for the backends Wireshark decodes without a plugin,
 * on their default ports: for this command's help, and for whatever prints a capture's story.
 */
export const DECODE_AS: { backend: string; what: string; flag: string }[] = [
  { backend: "vxlan", what: "VXLAN as flannel sets it up", flag: `-d udp.port==${vxlanBackend.port},vxlan` },
  { backend: "udp", what: "flannel's udp: raw IPv4 in UDP", flag: `-d udp.port==${udpBackend.port},ip` },
];

export const luaDissectorCommand: Command = {
  name: "lua-dissector",
  summary: "print the Wireshark dissector (Lua) of the tapnet backend's tunnel format",
  options: {},
  details: [
    "Install it for Wireshark and tshark (the folder may need creating first):",
    "  mkdir -p ~/.local/lib/wireshark/plugins",
    "  tapnet lua-dissector > ~/.local/lib/wireshark/plugins/tapnet.lua",
    "or use it for one run: tshark -X lua_script:tapnet.lua -r underlay.pcap",
    "",
    `It decodes the datagrams on UDP port ${tapnetBackend.port} (Decode As "tapnet", or the preference tapnet.port, for`,
    "another): version 1 down to the pod's Ethernet, IPv4 and TCP (the virtio_net_hdr shown on the way); version 2",
    "(sealed) as far as its header, ciphertext and tag.",
    "",
    "The other backends need no plugin, only a decode-as flag, as their ports are not Wireshark's defaults:",
    ...DECODE_AS.map((d) => `  ${`${d.backend} (${d.what}):`.padEnd(40)}tshark ${d.flag} -r underlay.pcap`),
    "In Wireshark: Analyze > Decode As..., UDP port, then VXLAN or IPv4.",
  ].join("\n"),
  async run() {
    process.stdout.write(readFileSync(LUA_DISSECTOR_URL, "utf8"));
    return 0;
  },
};
