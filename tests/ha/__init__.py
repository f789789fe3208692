"""A highly available Redis under coder_ring (issue 20): a primary, a replica and three
sentinels failing over under load, and a Redis that lets a user touch only its
namespace's keys and channels (ACL)."""
