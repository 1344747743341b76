//! Bluetooth LE driver (issue 5): Nuki smart locks over btleplug.
