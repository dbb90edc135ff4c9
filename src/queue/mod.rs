//! Message queues (placeholder, see the queue issue).
