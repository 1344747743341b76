// lockhub (from shared/tools/zwave-mock/mocks): mock config for the S2 run of examples/zwave_bench.rs: the three
// locks of locks.cjs (nodes 2, 3 and the FLiRS node 4; the same CCs, User Code v2 with 30 users, the same control channel on ZW_CTRL_PORT, built by locks.cjs itself), but each lock
// is included with S2 Access Control. The network keys are those of secure-locks.cjs.
//   secure-only (secure: true, listed in the S2 Commands Supported Report): User Code, Door Lock,
//     Schedule Entry Lock, Notification, Time Parameters (lock-clock.cjs, as in secure-locks.cjs)
//   non-secure: Version, Manufacturer Specific, Z-Wave Plus Info, Battery, Wake Up, Supervision (Security 2 itself)
// STRICT, like secure-locks.cjs: a command of the secure-only CCs that did not arrive
// S2-encapsulated under S2_AccessControl is ignored (no reply, no state change) and logged "STRICT drop ...".
// So a run whose User Code sets all return Supervision Success sent every one of them encrypted.
// ZW_STRICT=0 starts it lenient (the stock mock answers plaintext too).
const locks = module.require("./locks.cjs"); // this file's own folder
const secureLocks = module.require("./secure-locks.cjs");
exports.default = ({ require }) => {
  const { CommandClasses, SecurityClass } = require("@zwave-js/core");
  const base = locks.default({ require });
  const { securityKeys } = secureLocks.default({ require }).controller;
  const S2_CLASS = SecurityClass.S2_AccessControl;
  const SECURE = new Set([CommandClasses["User Code"], CommandClasses["Door Lock"], CommandClasses["Schedule Entry Lock"],
    CommandClasses.Notification, CommandClasses["Time Parameters"]]);
  const ccIdOf = (c) => (typeof c === "number" ? c : c.ccId);
  const secureCCs = (ccs) => ccs.flatMap((c) => {
    const out = SECURE.has(ccIdOf(c)) ? [{ ...(typeof c === "number" ? { ccId: c } : c), secure: true }] : [c];
    if (ccIdOf(c) === CommandClasses["Z-Wave Plus Info"]) out.push(CommandClasses["Security 2"]); // as in secure-locks.cjs
    return out;
  });

  let strict = process.env.ZW_STRICT !== "0";
  const arrivedAs = (cc) => cc.getEncapsulatingCC(CommandClasses["Security 2"], 0x03 /* Message Encapsulation */)?.securityClass
    ?? (cc.isEncapsulatedWith(CommandClasses.Security) ? SecurityClass.S0_Legacy : SecurityClass.None);
  const strictBehavior = {
    handleCC(_c, self, cc) {
      if (!strict || !SECURE.has(cc.ccId)) return undefined;
      const got = arrivedAs(cc);
      if (got === S2_CLASS) return undefined;
      console.log(`STRICT drop node=${self.id} cc=0x${cc.ccId.toString(16)} cmd=0x${(cc.ccCommand ?? 0).toString(16)} got=${SecurityClass[got] ?? got}`);
      return { action: "stop" };
    },
  };

  const nodes = base.nodes.map((n) => ({
    ...n,
    behaviors: [...(n.behaviors ?? []), strictBehavior], // locks.cjs's "dead" behaviour first
    capabilities: { ...n.capabilities, commandClasses: secureCCs(n.capabilities.commandClasses), securityClasses: new Set([S2_CLASS]) },
  }));
  return {
    ...base, // onInit: locks.cjs's control channel (dead, alive, noack, txdelay, remove, send, state)
    controller: { ...base.controller, securityKeys },
    nodes,
    onInit(controller, mockNodes) {
      console.log(`STRICT ${strict ? "on" : "off"}: nodes ${mockNodes.map((n) => n.id).join(", ")} S2_AccessControl`);
      base.onInit(controller, mockNodes);
    },
  };
};
