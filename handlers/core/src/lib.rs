//! The pure core of hubspoke.
