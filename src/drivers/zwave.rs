//! Z-Wave driver (issue 4): the Serial API to User Code, Schedule Entry Lock,
//! Door Lock, Notification, Battery and Wake Up command classes.
