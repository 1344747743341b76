// lockhub: a lock's own clock, which the stock mock does not have (it keeps Schedule Entry Lock's Time Offset, but
// has no Time Parameters behaviour). Written from the Time Parameters CC (0x8B) definition as zwave-js's
// TimeParametersCC.ts reads and writes it: Set/Report = year (16 bit BE), month, day, hour, minute, second, UTC.
//   - Time Parameters Set: the lock's clock is set (it then runs in step with real time); counted.
//   - Time Parameters Get: a Report of the lock's clock now. A lock that never had its clock set, or lost it
//     ("clockLost"), counts from 2000-01-01T00:00:00Z at its power-up, as a lock on a fresh battery does.
// Control commands (handled by `control(m, node)`, wired into locks.cjs and secure-locks.cjs):
//   {"cmd":"clock","node":N}                  -> {"utc": ISO time on the lock's clock, "sets": k,
//                                                 "standardOffset": min, "dstOffset": min (Schedule Entry Lock's)}
//   {"cmd":"clockSkew","node":N,"ms":d}       the lock's clock runs d ms off from now on (drift)
//   {"cmd":"clockLost","node":N}              the lock restarted: clock back to 2000-01-01, time offset forgotten
exports.build = ({ require }) => {
  const { CommandClasses } = require("@zwave-js/core");
  const { CommandClass } = require("@zwave-js/cc");
  const { TimeParametersCCSet, TimeParametersCCGet } = require("@zwave-js/cc/TimeParametersCC");
  const EPOCH_2000 = Date.UTC(2000, 0, 1);
  const clocks = new Map(); // node id -> { offsetMs (lock clock - real time), sets }
  const clockOf = (id) => {
    if (!clocks.has(id)) clocks.set(id, { offsetMs: EPOCH_2000 - Date.now(), sets: 0 });
    return clocks.get(id);
  };
  const lockNow = (id) => new Date(Date.now() + clockOf(id).offsetMs);
  const report = (controller, d) => {
    const p = Buffer.alloc(7);
    p.writeUInt16BE(d.getUTCFullYear(), 0);
    p[2] = d.getUTCMonth() + 1; p[3] = d.getUTCDate(); p[4] = d.getUTCHours(); p[5] = d.getUTCMinutes();
    p[6] = d.getUTCSeconds();
    return new CommandClass({ nodeId: controller.ownNodeId, ccId: CommandClasses["Time Parameters"], ccCommand: 0x03,
      payload: p });
  };
  const behavior = {
    handleCC(controller, self, cc) {
      if (cc instanceof TimeParametersCCSet) {
        const c = clockOf(self.id);
        c.offsetMs = cc.dateAndTime.getTime() - Date.now();
        c.sets += 1;
        console.log(`CLOCK set node=${self.id} utc=${cc.dateAndTime.toISOString()}`);
        return { action: "ok" };
      }
      if (cc instanceof TimeParametersCCGet) return { action: "sendCC", cc: report(controller, lockNow(self.id)) };
      return undefined;
    },
  };
  // Returns the reply line, or undefined when `m.cmd` is not a clock command.
  const control = (m, node) => {
    switch (m.cmd) {
      case "clock": return JSON.stringify({ utc: lockNow(node.id).toISOString(), sets: clockOf(node.id).sets,
        standardOffset: node.state.get("ScheduleEntryLock_standardOffset") ?? null,
        dstOffset: node.state.get("ScheduleEntryLock_dstOffset") ?? null });
      case "clockSkew": clockOf(node.id).offsetMs += m.ms; return "ok";
      case "clockLost":
        clockOf(node.id).offsetMs = EPOCH_2000 - Date.now();
        node.state.delete("ScheduleEntryLock_standardOffset"); node.state.delete("ScheduleEntryLock_dstOffset");
        return "ok";
      default: return undefined;
    }
  };
  return { behavior, control, cc: { ccId: CommandClasses["Time Parameters"], version: 1 } };
};
