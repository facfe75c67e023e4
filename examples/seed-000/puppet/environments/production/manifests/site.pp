# Seed 000's Puppet code, bound read-only into the puppet machine at /etc/puppet/code.

# Every agent: the seed's first test.
file { '/puppet-test':
  content => "Hello. Hallo.\n",
}

# Every agent: the team's module (modules/motd beside the lab's config), its banner from hiera (data/).
include motd

# web-<name>: nginx serving https://<name>.<domain>/ with a certificate made for it.
node /^web-/ {
  $site = "${regsubst($facts['networking']['hostname'], '^web-', '')}.${facts['networking']['domain']}"
  exec { 'certificate':
    command => "/usr/bin/openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj /CN=${site} -keyout /etc/ssl/private/site.key -out /etc/ssl/certs/site.crt",
    creates => '/etc/ssl/certs/site.crt',
  }
  file { '/var/www/html/index.html':
    content => "<h1>${site}</h1>\n<p>served by ${facts['networking']['hostname']}, provisioned by Puppet</p>\n",
  }
  file { '/etc/nginx/sites-enabled/default':
    content => "server {\n  listen 443 ssl default_server;\n  ssl_certificate /etc/ssl/certs/site.crt;\n  ssl_certificate_key /etc/ssl/private/site.key;\n  root /var/www/html;\n}\n",
    require => Exec['certificate'],
    notify  => Service['nginx'],
  }
  service { 'nginx':
    ensure => running,
    enable => true,
  }
}

# web: port 80 answers 301 to https; port 443 routes <name>.<domain> by SNI to web-<name>.
node /^web\./, 'web' {
  $domain = $facts['networking']['domain']
  $sites = ['silicon', 'prologin']
  file { '/etc/haproxy/haproxy.cfg':
    content => epp('/etc/puppet/code/environments/production/templates/haproxy.cfg.epp', { 'domain' => $domain, 'sites' => $sites }),
    notify  => Service['haproxy'],
  }
  service { 'haproxy':
    ensure => running,
    enable => true,
  }
}
