// lockhub: secure locks for the security tests (after shared/tools/zwave-mock/mocks/secure-locks.cjs,
// with the lock CCs and the control channel of locks.cjs).
//   node 2: included with S2 Access Control;  node 3: included with S0 (Legacy).
//   Keys (zwave-js names, the test network's): S0_Legacy 0102..10, S2_Unauthenticated 11.., S2_Authenticated 22..,
//   S2_AccessControl 33.. (the tests write the same keys into lockhub's keys file).
//   Secure-only (secure: true, in the Commands Supported Reports): User Code, Door Lock, Schedule Entry Lock,
//   Notification, Time Parameters (the lock's clock: lock-clock.cjs). Non-secure: Version, Manufacturer Specific, Z-Wave Plus Info, Battery, Supervision.
//
// STRICT, which the stock mock is not: a User Code, Door Lock, Schedule Entry Lock, Notification or Time Parameters
// command that does
// not arrive in the node's OWN security class (node 2: S2_AccessControl, node 3: S0_Legacy) is ignored (no reply,
// no state change) and logged "STRICT drop ...". So a test whose codes land on these locks sent them encrypted.
//
// Control channel on ZW_CTRL_PORT (line JSON), as locks.cjs (dead, alive, mute, noack, txdelay, remove, send,
// state [prefix]) plus:
//   {"cmd":"sendSecure","node":N,"hex":"..."}  an unsolicited command from the node, encrypted in its class
//   {"cmd":"desync","node":2}                   the node forgets its S2 SPAN with the controller just before the
//                                               controller's next encrypted frame reaches it (a lost nonce state: that
//                                               frame cannot be decrypted -> Nonce Report SOS)
//   {"cmd":"dropNonceGet","node":N,"count":k}   the node ignores the controller's next k Nonce Gets (S0 or S2)
//   {"cmd":"sets","node":N}                      how often each user id was set (User Code Set / Extended Set)
//                                               that the node carried out: {"<userId>": count}
// build(ctx, { pending }) is shared with secure-incl-s2.cjs / secure-incl-s0.cjs: no nodes at start, and `pending`
// (a nodePendingInclusion with an `ownClass`) joins on Add Node with the same strict behaviours.
exports.default = (ctx) => exports.build(ctx, {});
exports.build = ({ require }, { pending }) => {
  const net = require("node:net");
  const { CommandClasses, SecurityClass, SPANState } = require("@zwave-js/core");
  const { CommandClass, Security2CC, Security2CCNonceGet, Security2CCNonceReport, SecurityCC, SecurityCCNonceGet,
    SecurityCCNonceReport } = require("@zwave-js/cc");
  const { createMockZWaveRequestFrame, MockZWaveFrameType } = require("@zwave-js/testing");
  const { SendDataRequest } = require("@zwave-js/serial/serialapi");
  const hex = (s) => Uint8Array.from(Buffer.from(s, "hex"));
  const clock = module.require("./lock-clock.cjs").build({ require });  // Time Parameters (the lock's clock)

  const SECURE = new Set([CommandClasses["User Code"], CommandClasses["Door Lock"], CommandClasses["Schedule Entry Lock"],
    CommandClasses.Notification, CommandClasses["Time Parameters"],
    CommandClasses["User Credential"]]);   // (User Credential: secure-user-credential.cjs)
  const lockCCs = (secCC) => [
    CommandClasses.Version, CommandClasses["Manufacturer Specific"], CommandClasses["Z-Wave Plus Info"], secCC,
    { ccId: CommandClasses["User Code"], version: 2, numUsers: 30, supportedKeypadModes: [0, 1], secure: true },
    { ccId: CommandClasses["Door Lock"], version: 4, secure: true },
    { ccId: CommandClasses["Schedule Entry Lock"], version: 3, numWeekDaySlots: 2, numYearDaySlots: 2, numDailyRepeatingSlots: 0,
      secure: true },
    { ccId: CommandClasses.Notification, version: 8, supportsV1Alarm: false, notificationTypesAndEvents: { 6: [1, 2, 5, 6] },
      secure: true },
    { ccId: CommandClasses.Battery, version: 1 },
    CommandClasses.Supervision,
    { ...clock.cc, secure: true },
  ];
  const ownClass = { 2: SecurityClass.S2_AccessControl, 3: SecurityClass.S0_Legacy };
  if (pending) ownClass[pending.id] = pending.ownClass(SecurityClass);

  const dead = new Set(), mute = new Set();
  const dropNonceGets = new Map();   // node -> how many Nonce Gets to ignore
  const sets = new Map();            // node -> Map(userId -> count)
  const desyncArmed = new Set();     // nodes that lose their SPAN before the next encrypted frame
  let exclusionReady = undefined;    // node id that leaves on the next Remove Node
  let afterOurExclusion = false;
  let mockController;
  const nodeById = (id) => mockController?.nodes.get(id);
  // Controller side: sees the host's SendData before the node parses (decrypts) it.
  const desyncBehavior = {
    async onHostMessage(controller, msg) {
      if (!(msg instanceof SendDataRequest)) return false;
      const id = msg.getNodeId(); const cc = msg.serializedCC;
      if (desyncArmed.has(id) && cc?.[0] === 0x9f && cc?.[1] === 0x03) {
        desyncArmed.delete(id);
        nodeById(id)?.securityManagers.securityManager2.deleteNonce(controller.ownNodeId);
        console.log(`DESYNC node=${id}: SPAN forgotten before an encrypted frame`);
      }
      return false;
    },
  };
  // Exclusion: the stock mock only says Ready. With {"cmd":"exclusionReady","node":N} the next Remove Node (not
  // Stop) reports N found, removing, done, and N leaves the network.
  const { RemoveNodeFromNetworkRequest, RemoveNodeFromNetworkRequestStatusReport, RemoveNodeStatus, RemoveNodeType } =
    require("@zwave-js/serial/serialapi");
  const exclusionBehavior = {
    async onHostMessage(controller, msg) {
      if (!(msg instanceof RemoveNodeFromNetworkRequest)) return false;
      if (msg.removeNodeType === RemoveNodeType.Stop && afterOurExclusion) {
        // The stock mock would take a Stop while idle as a start: answer it here.
        afterOurExclusion = false;
        if (msg.callbackId) await controller.sendMessageToHost(new RemoveNodeFromNetworkRequestStatusReport({
          callbackId: msg.callbackId, status: RemoveNodeStatus.Failed }));
        return true;
      }
      if (exclusionReady === undefined || msg.removeNodeType === RemoveNodeType.Stop) return false;
      afterOurExclusion = true;
      const id = exclusionReady; exclusionReady = undefined;
      const report = (status, nodeId) => controller.sendMessageToHost(new RemoveNodeFromNetworkRequestStatusReport({
        callbackId: msg.callbackId, status, ...(nodeId !== undefined ? { nodeId } : {}) }));
      await report(RemoveNodeStatus.Ready);
      await report(RemoveNodeStatus.NodeFound);
      await report(RemoveNodeStatus.RemovingSlave, id);
      const n = nodeById(id); if (n) controller.removeNode(n);
      await report(RemoveNodeStatus.Done, id);
      console.log(`EXCLUDED node=${id}`);
      return true;
    },
  };
  const deadBehavior = { handleCC(_c, self) { return dead.has(self.id) || mute.has(self.id) ? { action: "stop" } : undefined; } };
  const arrivedAs = (cc) => cc.getEncapsulatingCC(CommandClasses["Security 2"], 0x03 /* Message Encapsulation */)?.securityClass
    ?? (cc.isEncapsulatedWith(CommandClasses.Security) ? SecurityClass.S0_Legacy : SecurityClass.None);
  const strictBehavior = {
    handleCC(_c, self, cc) {
      if (!SECURE.has(cc.ccId)) return undefined;
      const got = arrivedAs(cc);
      if (got === ownClass[self.id]) return undefined;
      console.log(`STRICT drop node=${self.id} cc=0x${cc.ccId.toString(16)} cmd=0x${(cc.ccCommand ?? 0).toString(16)} got=${SecurityClass[got] ?? got}`);
      return { action: "stop" };
    },
  };
  const nonceLossBehavior = {
    handleCC(_c, self, cc) {
      const left = dropNonceGets.get(self.id) ?? 0;
      if (left > 0 && (cc instanceof Security2CCNonceGet || cc instanceof SecurityCCNonceGet)) {
        dropNonceGets.set(self.id, left - 1);
        console.log(`NONCE GET dropped node=${self.id}`);
        return { action: "stop" };
      }
      return undefined;
    },
  };
  const countSets = {
    handleCC(_c, self, cc) {
      if (cc.ccId !== CommandClasses["User Code"]) return undefined;
      const m = sets.get(self.id) ?? new Map(); sets.set(self.id, m);
      const bump = (u) => m.set(u, (m.get(u) ?? 0) + 1);
      if (cc.ccCommand === 0x01 && cc.userId !== undefined) bump(cc.userId);          // User Code Set
      if (cc.ccCommand === 0x0b) for (const u of cc.userCodes ?? []) bump(u.userId);  // Extended User Code Set
      return undefined;
    },
  };
  const lock = (id, secClass, secCC) => ({ // (only id is used for a pending node: its behaviours)
    id,
    // In this order: a dead node answers nothing; a dropped nonce get is never answered; strict before the sets count.
    behaviors: [deadBehavior, nonceLossBehavior, strictBehavior, countSets, clock.behavior],
    capabilities: {
      genericDeviceClass: 0x40, specificDeviceClass: 0x03, manufacturerId: 0x0090, productType: 1, productId: 0x0642,
      commandClasses: lockCCs(secCC), securityClasses: new Set([secClass]),
    },
  });

  async function sendS2(controller, n, cc) {
    const st = n.securityManagers.securityManager2.getSPANState(controller.ownNodeId);
    if (st.type === SPANState.None || st.type === SPANState.LocalEI) {
      await n.sendToController(createMockZWaveRequestFrame(new Security2CCNonceGet({ nodeId: controller.ownNodeId }), { ackRequested: false }));
      await n.expectControllerFrame((f) => f.type === MockZWaveFrameType.Request && f.payload instanceof Security2CCNonceReport
        && f.payload.SOS, { timeout: 1000 });
    }
    await n.sendToController(createMockZWaveRequestFrame(Security2CC.encapsulate(cc, n.id, n.securityManagers), { ackRequested: false }));
  }
  async function sendS0(controller, n, cc) {
    await n.sendToController(createMockZWaveRequestFrame(new SecurityCCNonceGet({ nodeId: controller.ownNodeId }), { ackRequested: false }));
    const rep = await n.expectControllerFrame((f) => f.type === MockZWaveFrameType.Request && f.payload instanceof SecurityCCNonceReport,
      { timeout: 1000 });
    const enc = SecurityCC.encapsulate(n.id, n.securityManagers.securityManager, cc);
    enc.nonce = rep.payload.nonce;
    await n.sendToController(createMockZWaveRequestFrame(enc, { ackRequested: false }));
  }

  return {
    controller: {
      homeId: 0xc0ffee01, ownNodeId: 1,
      securityKeys: {
        S0_Legacy: hex("0102030405060708090a0b0c0d0e0f10"),
        S2_Unauthenticated: hex("11111111111111111111111111111111"),
        S2_Authenticated: hex("22222222222222222222222222222222"),
        S2_AccessControl: hex("33333333333333333333333333333333"),
      },
      behaviors: [desyncBehavior, exclusionBehavior],
    },
    nodes: pending ? [] : [
      lock(2, SecurityClass.S2_AccessControl, CommandClasses["Security 2"]),
      lock(3, SecurityClass.S0_Legacy, CommandClasses.Security),
    ],
    onInit(controller, nodes) {
      mockController = controller;
      if (pending) {
        const { ownClass: _o, ...inclusion } = pending;
        controller.nodePendingInclusion = { ...inclusion, setup(node) {
          node.defineBehavior(...lock(node.id).behaviors);
          pending.setup?.(node);
        } };
      }
      const byId = nodeById;
      console.log(`STRICT on: ${Object.entries(ownClass).map(([id, c]) => `node ${id} ${SecurityClass[c]}`).join(", ")}`);
      const srv = net.createServer((sock) => {
        let buf = "";
        sock.on("data", async (d) => {
          buf += d; let i;
          while ((i = buf.indexOf("\n")) >= 0) {
            const line = buf.slice(0, i); buf = buf.slice(i + 1);
            let reply = "ok";
            try {
              const m = JSON.parse(line); const n = byId(m.node);
              const rawCC = () => {
                const b = Buffer.from(m.hex.replace(/\s+/g, ""), "hex");
                return new CommandClass({ nodeId: controller.ownNodeId, ccId: b[0], ccCommand: b[1], payload: b.subarray(2) });
              };
              switch (m.cmd) {
                case "dead": dead.add(m.node); n.autoAckControllerFrames = false; break;
                case "alive": dead.delete(m.node); n.autoAckControllerFrames = true; break;
                case "mute": if (m.on === false) mute.delete(m.node); else mute.add(m.node); break;
                case "noack": n.autoAckControllerFrames = !m.on; break;
                case "txdelay": n.capabilities.txDelay = m.ms; break;
                case "remove": controller.removeNode(n); break;
                case "send": await n.sendToController(createMockZWaveRequestFrame(rawCC(), { ackRequested: !!m.ack })); break;
                case "sendSecure":
                  if (ownClass[n.id] === SecurityClass.S0_Legacy) await sendS0(controller, n, rawCC());
                  else await sendS2(controller, n, rawCC());
                  break;
                case "desync": desyncArmed.add(n.id); break;
                case "dropNonceGet": dropNonceGets.set(n.id, m.count ?? 1); break;
                case "exclusionReady": exclusionReady = m.node; break;
                case "sets": reply = JSON.stringify(Object.fromEntries(sets.get(n.id) ?? new Map())); break;
                case "state": { const pre = m.prefix ?? "UserCode_";
                  reply = JSON.stringify([...n.state].filter(([k]) => k.startsWith(pre))); break; }
                default: reply = clock.control(m, n) ?? "unknown cmd";   // clock, clockSkew, clockLost
              }
            } catch (e) { reply = "error: " + e.message; }
            sock.write(reply + "\n");
          }
        });
      });
      const port = Number(process.env.ZW_CTRL_PORT || 5556);
      srv.listen(port, "127.0.0.1", () => console.log(`Control channel on 127.0.0.1:${srv.address().port}`));
    },
  };
};
