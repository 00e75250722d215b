//! The simulated Azure: an in-memory imitation of the Microsoft.Network part of Azure Resource
//! Manager that hubspoke touches. It stands alone: it shares no code with the client or the core.
pub mod cli;
