// lockhub: secure-locks.cjs (same keys, same STRICT rule, same control channel), but node 2 (S2 Access Control)
// speaks User Credential instead of User Code and Schedule Entry Lock, secure-only: a User Credential command that
// does not arrive under S2_AccessControl is ignored and logged "STRICT drop". PIN slots as in user-credential.cjs.
// The stock User Credential behaviours send their User / Credential Reports plaintext (sendToController, not a
// reply the mock encrypts): here node 2 encrypts them under S2, as a real S2 lock does (lockhub believes a report
// of a secure-only CC only in the node's class).
exports.default = (ctx) => {
  const cfg = require("./secure-locks.cjs").default(ctx);
  const { CommandClasses } = ctx.require("@zwave-js/core");
  const userCredential = {
    ccId: CommandClasses["User Credential"], version: 1, secure: true,
    numberOfSupportedUsers: 20, supportedCredentialRules: [1], maxUserNameLength: 16,
    supportsCredentialChecksum: true, supportedUserTypes: [0], supportsAdminCode: false,
    supportedCredentialTypes: new Map([[1, {
      numberOfCredentialSlots: 20, minCredentialLength: 6, maxCredentialLength: 8,
      maxCredentialHashLength: 0, supportsCredentialLearn: false,
    }]]),
  };
  const replaced = [CommandClasses["User Code"], CommandClasses["Schedule Entry Lock"]];
  const n = cfg.nodes.find((x) => x.id === 2);
  const ccs = n.capabilities.commandClasses.filter((c) => !replaced.includes(c.ccId ?? c));
  n.capabilities = { ...n.capabilities, commandClasses: [...ccs, userCredential] };
  const { Security2CC } = ctx.require("@zwave-js/cc");
  const { UserCredentialCC } = ctx.require("@zwave-js/cc/UserCredentialCC");
  const { createMockZWaveRequestFrame, MockZWaveFrameType } = ctx.require("@zwave-js/testing");
  const init = cfg.onInit;
  cfg.onInit = (controller, nodes) => {
    init(controller, nodes);
    const node = nodes.find((x) => x.id === 2);
    const send = node.sendToController.bind(node);
    node.sendToController = (frame) => {
      if (frame.type === MockZWaveFrameType.Request && frame.payload instanceof UserCredentialCC) {
        const enc = Security2CC.encapsulate(frame.payload, node.id, node.securityManagers);
        frame = createMockZWaveRequestFrame(enc, { ackRequested: frame.ackRequested });
      }
      return send(frame);
    };
  };
  return cfg;
};
