# The team's own module, served by the Puppet server from modules/ beside the lab's config.
class motd {
  file { '/etc/motd':
    content => "${lookup('motd::banner')}\n",
  }
}
